"""Recurrent networks: continuing a signal step by step, and reading digits row by row.

Two small tasks for ``nn.SimpleRNN``, ``nn.LSTM`` and ``nn.GRU`` (32 units, batch-first input
``(N, T, F)``, trained with Adam through ``fastnn.nn.fit``):

1. Forecasting. Each training example is a window of 40 samples of the signal
   ``sin(t) + 0.5 sin(2.3 t)`` and the target is the next sample. After training, each network
   continues the signal on its own past the end of the training data, feeding every prediction
   back as the newest input (free-running generation): one-step errors compound, so the forecast
   error grows with the horizon. A low one-step training loss does not guarantee a stable
   generator: in this run SimpleRNN fits the training windows best and drifts the most.
2. Classification. An 8x8 digit is read as a sequence of 8 rows of 8 pixels; the recurrent
   state must carry what the earlier rows showed. The layers accept any sequence length, so the
   trained network can also be asked for its answer after only the first k rows. It was trained
   to answer after the last row only, and it defers its decision: the early answers are near
   chance, and the accuracy jumps over the last three rows.

``sequences_forecast.png``: the end of the training range and each network's free-running
forecast against the true continuation; the forecast error against the horizon; the training
loss curves. ``sequences_digits.png``: test accuracy
against the number of rows read, and for a few test digits the probability of their true class
row after row.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from fastnn import nn  # noqa: E402

CELLS = {"SimpleRNN": nn.SimpleRNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
DT, WINDOW = 0.25, 40


def signal(t):
    return (np.sin(t) + 0.5 * np.sin(2.3 * t)).astype(np.float32)


def forecast(model, history, steps):
    """Feed each prediction back as input; returns ``steps`` generated samples."""
    window = list(history[-WINDOW:])
    for _ in range(steps):
        x = np.array(window[-WINDOW:], dtype=np.float32)[None, :, None]
        window.append(float(nn.predict(model, x)[0, 0]))
    return np.array(window[WINDOW:])


def predict_prefix(model, x):
    """Class probabilities for sequences shorter than the training ones.

    The layers are run one by one: ``Sequential`` pins the sequence length at its first forward.
    """
    for layer in model.layers:
        x = layer.forward(x)
    return softmax(x)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few epochs (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs, horizon, n_digits = (2, 20, 300) if args.quick else (30, 400, None)

    # 1. forecasting: 500 windows from t in [0, 135), then free-running generation
    t = np.arange(0, 135 + WINDOW * DT, DT)
    s = signal(t)
    X = np.stack([s[i:i + WINDOW] for i in range(len(s) - WINDOW)])[:, :, None]
    y = s[WINDOW:, None]
    fig = plt.figure(figsize=(16, 8))
    ax_sig = fig.add_subplot(2, 1, 1)
    ax_err, ax_loss = fig.add_subplot(2, 2, 3), fig.add_subplot(2, 2, 4)
    t_future = t[-1] + DT * np.arange(1, horizon + 1)
    ax_sig.plot(t[-80:], s[-80:], color="k", label="training data (end)")
    ax_sig.plot(t_future, signal(t_future), color="0.7", linewidth=4, label="true continuation")
    for name, cell in CELLS.items():
        model = nn.Sequential(cell(32), nn.Dense(1), seed=0)
        history = nn.fit(model, X, y, loss="mse", lr=3e-3, epochs=epochs, batch_size=32, seed=0)
        pred = forecast(model, s, horizon)
        print(f"{name:9s} forecast: final training MSE {history['loss'][-1]:.2e}, MSE over "
              f"{horizon} generated steps {np.mean((pred - signal(t_future)) ** 2):.3f}")
        ax_sig.plot(t_future, pred, linewidth=1, label=f"{name} forecast")
        w = min(25, horizon // 4)  # about one period: RMS error over a sliding window
        rms = np.sqrt(np.convolve((pred - signal(t_future)) ** 2, np.ones(w) / w, "valid"))
        ax_err.semilogy(np.arange(w, horizon + 1), rms, label=name)
        ax_loss.semilogy(np.arange(1, epochs + 1), history["loss"], "o-", markersize=3,
                         label=name)
    ax_sig.axvline(t[-1], color="k", linewidth=0.8)
    ax_sig.set(xlabel="t", ylabel="signal", title="Free-running forecast past the training range "
               f"({horizon} steps of {DT})")
    ax_sig.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax_err.set(xlabel="steps generated", ylabel=f"RMS error over the last {w} steps",
               title="Forecast error")
    ax_err.legend(fontsize=8)
    ax_loss.set(xlabel="epoch", ylabel="training MSE (one step ahead)", title="Training loss")
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    saved = [out / "sequences_forecast.png", out / "sequences_digits.png"]
    fig.savefig(saved[0], dpi=90)
    plt.close(fig)

    # 2. digits as sequences of rows: (N, 8 rows, 8 pixels)
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32).reshape(-1, 8, 8)[:n_digits]
    X_train, X_test, y_train, y_test = train_test_split(
        images, labels[:n_digits], test_size=0.3, random_state=0, stratify=labels[:n_digits])
    fig, (ax_acc, ax_prob) = plt.subplots(1, 2, figsize=(13, 4.5))
    rows = np.arange(1, 9)
    for name, cell in CELLS.items():
        model = nn.Sequential(cell(32), nn.Dense(10), seed=0)
        nn.fit(model, X_train, y_train, lr=5e-3, epochs=epochs, batch_size=32, seed=0)
        proba = np.stack([predict_prefix(model, X_test[:, :k]) for k in rows])
        accuracy = (proba.argmax(axis=2) == y_test).mean(axis=1)
        print(f"{name:9s} digits: test accuracy {accuracy[-1]:.3f} after all 8 rows")
        ax_acc.plot(rows, accuracy, "o-", label=name)
        if name == "LSTM":
            for i in range(6):
                ax_prob.plot(rows, proba[:, i, y_test[i]], "o-",
                             label=f"test digit #{i}: a {y_test[i]}")
    ax_acc.set(xlabel="rows read", ylabel="test accuracy", ylim=(0, 1),
               title="Classifying after reading the first k rows")
    ax_acc.legend()
    ax_prob.set(xlabel="rows read", ylabel="probability of the true class", ylim=(0, 1.02),
                title="LSTM: confidence as the rows come in, six test digits")
    ax_prob.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(saved[1], dpi=90)
    plt.close(fig)
    for path in saved:
        print(f"saved {path}")
    return saved


if __name__ == "__main__":
    main()
