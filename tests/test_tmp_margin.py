import numpy as np
def test_margins(int8_export):
    r = int8_export.accuracy
    k, e = r.keras_logits, r.exported_logits
    a, b = k.argmax(1), e.argmax(1)
    idx = np.where(a != b)[0]
    print("disagree", len(idx), "of", len(a))
    for i in idx:
        print(i, "keras margin", k[i, a[i]] - k[i, b[i]], "exported margin", e[i, b[i]] - e[i, a[i]], "max|diff|", np.abs(k[i]-e[i]).max())
    srt = np.sort(k, 1)
    print("keras top1-top2 margins quantiles", np.quantile(srt[:, -1] - srt[:, -2], [0.05, 0.1, 0.5]))
    print("overall max |diff|", np.abs(k - e).max(), "mean", np.abs(k - e).mean())
    print(int8_export.manifest.get("network", {}).keys() if isinstance(int8_export.manifest.get("network"), dict) else "")
