"""The HTML report: one self-contained page per experiment, study or investigation (`runner report FILE
--format html`), fed by the same read path as the text and JSON formats. Modules: `svg` (the charts),
`plots` (which charts an experiment gets), `responses` (the response browser), `page` (the page,
its styles and its one script), `experiment` (an experiment's and a study's page)."""
