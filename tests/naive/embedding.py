"""Float64 references for the embedding lookup and its weight gradient, position by position."""
import numpy as np


def embedding(indices, weight):
    """Row ``indices[pos]`` of ``weight`` at every position: ``indices.shape + (D,)``."""
    idx = np.asarray(indices)
    w = np.asarray(weight, dtype=np.float64)
    out = np.empty(idx.shape + (w.shape[1],))
    for pos in np.ndindex(idx.shape):
        out[pos] = w[int(idx[pos])]
    return out


def embedding_backward(dy, indices, num_embeddings, padding_idx=None):
    """(num_embeddings, D): row r is the sum of dy over the positions holding r; the
    ``padding_idx`` row (a row number, or None) is zero."""
    idx = np.asarray(indices)
    dy = np.asarray(dy, dtype=np.float64)
    dw = np.zeros((num_embeddings, dy.shape[-1]))
    for pos in np.ndindex(idx.shape):
        r = int(idx[pos])
        if r != padding_idx:
            dw[r] += dy[pos]
    return dw
