"""WCAG colour contrast, for the tests that check the panel's colours (:data:`labkit.notebook.panel.PALETTE`)."""

#: JupyterLab's backgrounds behind an output: white in the light theme; #111 and #212121 in the dark one.
BACKGROUNDS = {"light": ("#ffffff",), "dark": ("#111111", "#212121")}


def contrast(fg: str, bg: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    def lum(c: str) -> float:
        rgb = [int(c.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in rgb]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
