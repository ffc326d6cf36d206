"""Embedding lookup (``torch.nn.functional.embedding``) and its weight gradient."""

from ._dispatch import backend
from ._validate import check_ndim, is_int


def _padding_idx(padding_idx, num_embeddings):
    """``padding_idx`` as a row in ``[0, num_embeddings)``, -1 for None (negative values count
    from the end, as torch)."""
    if padding_idx is None:
        return -1
    if not is_int(padding_idx):
        raise TypeError(f"padding_idx must be None or an int, got {padding_idx!r}")
    p = int(padding_idx)
    if not -num_embeddings <= p < num_embeddings:
        raise ValueError(f"padding_idx must be within [-{num_embeddings}, {num_embeddings}) "
                         f"(num_embeddings={num_embeddings}), got {padding_idx}")
    return p + num_embeddings if p < 0 else p


def _flat_indices(be, indices, num_embeddings):
    """``indices`` as a flat int64 array (on the backend), every value in range."""
    idx = be.int_array(indices, "indices")
    shape = tuple(idx.shape)
    flat = idx.reshape(idx.size) if idx.ndim != 1 else idx
    if flat.size:
        lo, hi = be.impl("embedding").index_bounds(flat)
        if lo < 0 or hi >= num_embeddings:
            raise ValueError(f"index {lo if lo < 0 else hi} is out of range: indices must lie "
                             f"in [0, {num_embeddings}) (num_embeddings={num_embeddings})")
    return flat, shape


def embedding(indices, weight, padding_idx=None):
    """``F.embedding(indices, weight, padding_idx)``: row ``indices[...]`` of ``weight``.

    indices: an integer array of any shape (cast to int64), each value in
    ``[0, num_embeddings)`` (ValueError naming a value out of range otherwise); weight
    ``(num_embeddings, embedding_dim)`` float. Returns ``indices.shape + (embedding_dim,)`` in the
    weight's dtype. ``padding_idx`` is checked only: as in torch it changes the gradient
    (``embedding_backward``), not the lookup.
    """
    be = backend(indices, weight)
    weight = be.float_array(weight, "weight", ndim=2, layout="(num_embeddings, embedding_dim)")
    v, d = weight.shape
    _padding_idx(padding_idx, v)
    flat, shape = _flat_indices(be, indices, v)
    return be.impl("embedding").embedding(flat, weight).reshape(shape + (d,))


def embedding_backward(dy, indices, num_embeddings, padding_idx=None):
    """The gradient of ``embedding`` with respect to the weight: ``(num_embeddings,
    embedding_dim)`` in dy's dtype, row ``r`` the sum of ``dy[..., :]`` over the positions where
    ``indices == r``; the ``padding_idx`` row is zero (as torch).

    dy: ``indices.shape + (embedding_dim,)``. Rows are added in a fixed order (ascending
    positions), with no atomics: the result is bitwise the same for any thread count.
    """
    be = backend(dy, indices)
    if not is_int(num_embeddings) or num_embeddings < 0:
        raise ValueError(f"num_embeddings must be an int >= 0, got {num_embeddings!r}")
    v = int(num_embeddings)
    p = _padding_idx(padding_idx, v)
    dy = be.float_array(dy, "dy")
    flat, shape = _flat_indices(be, indices, v)
    check_ndim(dy, "dy", len(shape) + 1, "(indices.shape + (embedding_dim,))")
    if tuple(dy.shape[:-1]) != shape:
        raise ValueError(f"dy must have shape indices.shape + (embedding_dim,) = {shape} + "
                         f"(embedding_dim,), got {tuple(dy.shape)}")
    d = int(dy.shape[-1])
    dy2 = dy.reshape((flat.size, d))
    return be.impl("embedding").embedding_backward(dy2, flat, v, p)
