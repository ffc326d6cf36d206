"""A tabular model with numeric and categorical columns: categorical codes through embeddings
beside the numeric columns, inside a scikit-learn ``Pipeline`` with a ``ColumnTransformer``.

The data is generated: 6 numeric columns and two categorical ones (a "city" of 40 levels and a
"product" of 12), and a label that depends on the numeric columns and on a hidden 2-D property of
each city and product (so an embedding has something to learn). The ``ColumnTransformer``
scales the numeric columns and turns each category into its integer code; its output is one
float matrix whose column blocks ``fastnn.nn.Columns`` routes: the numeric block through a
``Dense`` layer, each code column through its own ``Embedding``. Compared with the same network
fed one-hot columns, and with scikit-learn's ``MLPClassifier`` on one-hot columns.

``tabular_embeddings.png``: test accuracy of the three pipelines, and the learned 2-D city
embedding coloured by the hidden property it recovered.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler  # noqa: E402

from fastnn import nn  # noqa: E402
from fastnn.sklearn import NeuralNetClassifier  # noqa: E402

NUMERIC = [f"x{i}" for i in range(6)]
CATEGORICAL = {"city": 40, "product": 12}


def make_table(n, seed=0):
    """A generated table (a dict of columns) and its binary label."""
    rng = np.random.default_rng(seed)
    table = {name: rng.standard_normal(n) for name in NUMERIC}
    hidden = {}
    for name, levels in CATEGORICAL.items():
        codes = rng.integers(0, levels, n)
        hidden[name] = rng.standard_normal((levels, 2))  # what an embedding can recover
        table[name] = np.array([f"{name}_{c}" for c in codes])
        table[f"_{name}_code"] = codes
    score = (table["x0"] - 0.5 * table["x1"] * table["x2"] + 0.8 * np.tanh(table["x3"])
             + 1.2 * hidden["city"][table["_city_code"], 0]
             - 0.8 * hidden["city"][table["_city_code"], 1] * hidden["product"][
                 table["_product_code"], 0])
    y = (score + 0.3 * rng.standard_normal(n) > 0).astype(np.int64)
    return table, y, hidden


def frame(table):
    """The columns a user would have (no hidden codes), as a 2-D object array in column order."""
    cols = NUMERIC + list(CATEGORICAL)
    return np.column_stack([table[c].astype(object) for c in cols]), cols


def embedding_pipeline(epochs, seed):
    """ColumnTransformer (scaled numerics, ordinal codes) -> a network with one Embedding per
    categorical column (``Columns`` routes the column blocks)."""
    n_num = len(NUMERIC)
    prep = ColumnTransformer([
        ("num", StandardScaler(), list(range(n_num))),
        ("cat", OrdinalEncoder(), list(range(n_num, n_num + len(CATEGORICAL)))),
    ])
    branches = [[nn.Dense(32), nn.ReLU()]]
    groups = [(0, n_num)]
    for i, levels in enumerate(CATEGORICAL.values()):
        branches.append([nn.Embedding(levels, 4), nn.Flatten()])
        groups.append((n_num + i, n_num + i + 1))
    layers = [nn.Columns(groups, *branches), nn.Dense(64), nn.ReLU(), nn.Dense(32), nn.ReLU()]
    net = NeuralNetClassifier(layers=layers, max_iter=epochs, learning_rate_init=3e-3,
                              batch_size=128, random_state=seed)
    return Pipeline([("prep", prep), ("net", net)])


def onehot_pipeline(epochs, seed, model="fastnn"):
    n_num = len(NUMERIC)
    prep = ColumnTransformer([
        ("num", StandardScaler(), list(range(n_num))),
        ("cat", OneHotEncoder(sparse_output=False),
         list(range(n_num, n_num + len(CATEGORICAL)))),
    ])
    if model == "fastnn":
        net = NeuralNetClassifier(layers=[nn.Dense(64), nn.ReLU(), nn.Dense(32), nn.ReLU()],
                                  max_iter=epochs, learning_rate_init=3e-3, batch_size=128,
                                  random_state=seed)
    else:
        net = SkMLPClassifier((64, 32), max_iter=epochs, learning_rate_init=3e-3,
                              batch_size=128, random_state=seed)
    return Pipeline([("prep", prep), ("net", net)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="2,000 rows, 3 epochs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n, epochs = (2000, 3) if args.quick else (20000, 30)
    table, y, hidden = make_table(n)
    X, _ = frame(table)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    pipes = {"embeddings (fastnn)": embedding_pipeline(epochs, 0),
             "one-hot (fastnn)": onehot_pipeline(epochs, 0),
             "one-hot (scikit-learn)": onehot_pipeline(epochs, 0, model="sklearn")}
    scores = {}
    for name, pipe in pipes.items():
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(X_tr, y_tr)
        scores[name] = pipe.score(X_te, y_te)
        print(f"{name:24s} test accuracy {scores[name]:.3f}")

    # the learned city embedding (rows in the OrdinalEncoder's order of the city levels)
    pipe = pipes["embeddings (fastnn)"]
    net = pipe.named_steps["net"]
    cities = pipe.named_steps["prep"].named_transformers_["cat"].categories_[0]
    columns = net.model_.layers[0]
    emb = next(layer for layer in columns.branches[1] if isinstance(layer, nn.Embedding))
    vectors = np.asarray(emb.parameters()[0].data)
    codes = np.array([int(c.split("_")[1]) for c in cities])
    truth = hidden["city"][codes, 0]

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    ax.barh(list(scores), list(scores.values()), color=["#4C72B0", "#8C8C8C", "#DD8452"])
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("test accuracy")
    ax.set_title(f"{n:,} rows, {epochs} epochs")
    for i, v in enumerate(scores.values()):
        ax.text(v + 0.005, i, f"{v:.3f}", va="center")
    from sklearn.decomposition import PCA
    xy = PCA(2).fit_transform(vectors)
    sc = bx.scatter(xy[:, 0], xy[:, 1], c=truth, cmap="coolwarm")
    fig.colorbar(sc, ax=bx, label="hidden city property")
    bx.set_title("learned city embedding (PCA of 4-D vectors)")
    fig.tight_layout()
    path = out / "tabular_embeddings.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()
