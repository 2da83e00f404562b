"""notebook_html: an executed notebook as one self-contained HTML file for the evidence.

Uses nbconvert's JupyterLab export with the project's template, which drops every script the
stock export loads from a CDN (require.js, MathJax, mermaid, widgets) and embeds images: the
page opens offline and fetches nothing. Never executes the notebook.
"""

from __future__ import annotations

from ceremony.resources import templates_dir

TEMPLATE = "ceremony"


def render_notebook_html(notebook: bytes) -> bytes:
    """The HTML of an executed notebook (.ipynb bytes), with nothing loaded from elsewhere."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.reads(notebook.decode("utf-8"), as_version=4)
    exporter = HTMLExporter(
        template_name=TEMPLATE,
        extra_template_basedirs=[str(templates_dir() / "nbconvert")],
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb)
    return body.encode("utf-8")
