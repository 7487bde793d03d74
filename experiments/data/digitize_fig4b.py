"""Read the paper's Fig. 4b heatmap cell by cell: paper_fig4b_cells.csv.

    python experiments/data/digitize_fig4b.py Fig-4-3.png   # figures/Fig-4-3.png of liuyz0/SuperpositionScaling

The heatmap has one cell per (gamma, alpha) of exp-10's grid: gamma = linspace(-1, 1, 10), alpha =
0, 0.125, ..., 2. The pixel positions of the axis ticks (gamma -1, 0, 1 at x = 655.5, 784.5, 914;
alpha 0 to 2 at y = 298.5 to 49.5) and of the colour bar's (0 at y = 306.5, 2 at y = 88) were read
off the 1052 x 388 PNG. Every pixel of a cell's middle (23 x 11 pixels) is matched to the nearest
colour of the colour bar; pixels further than 12 (RGB units) from every bar colour (the boxes the
authors drew over the map, cell borders) are dropped, and the cell's value is the median of the
rest (``pixels``: how many were kept; ``pixel_std``: their spread). A colour-bar step is 0.009 of
the exponent, so a clean cell reads to about 0.01.
"""

import sys

import numpy as np
import pandas as pd
from PIL import Image

X_OF_GAMMA = (784.5, 129.25)  # x = 784.5 + 129.25 gamma
Y_OF_ALPHA = (298.5, 124.5)  # y = 298.5 - 124.5 alpha
BAR_ROWS, BAR_COLUMNS, BAR_ZERO, BAR_PER_UNIT = range(42, 306), slice(947, 953), 306.5, (306.5 - 88) / 2


def read(png: str) -> pd.DataFrame:
    image = np.asarray(Image.open(png).convert("RGB")).astype(float)
    rows = np.array(BAR_ROWS)
    bar = image[rows, BAR_COLUMNS].mean(1)
    values = (BAR_ZERO - rows) / BAR_PER_UNIT
    cells = []
    for alpha in np.arange(17) * 0.125:
        for gamma in np.linspace(-1, 1, 10):
            x = round(X_OF_GAMMA[0] + X_OF_GAMMA[1] * gamma)
            y = round(Y_OF_ALPHA[0] - Y_OF_ALPHA[1] * alpha)
            patch = image[y - 5 : y + 6, x - 11 : x + 12].reshape(-1, 3)
            distance = np.linalg.norm(patch[:, None, :] - bar[None], axis=2)
            kept = distance.min(1) < 12
            read = values[distance.argmin(1)[kept]]
            ok = kept.sum() >= 20
            cells.append(
                {
                    "weight_decay": float(gamma),
                    "alpha": float(alpha),
                    "model_exponent": float(np.median(read)) if ok else np.nan,
                    "pixels": int(kept.sum()),
                    "pixel_std": float(np.std(read)) if ok else np.nan,
                }
            )
    return pd.DataFrame(cells)


if __name__ == "__main__":
    read(sys.argv[1]).to_csv(
        sys.argv[2] if len(sys.argv) > 2 else "paper_fig4b_cells.csv", index=False, float_format="%.4g"
    )
