window.MathJax = {
  tex: {
    // \( \) and \[ \] from pymdownx.arithmatex; $ and $$ in the notebooks' markdown cells
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  }
  // the whole page is typeset (code blocks are skipped by default), so the notebooks' markdown
  // cells, whose formulas sit in nested paragraphs, render as well as pymdownx's arithmatex spans
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache()
  MathJax.typesetClear()
  MathJax.texReset()
  MathJax.typesetPromise()
})
