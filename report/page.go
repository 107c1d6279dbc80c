package report

import "html/template"

// page is the whole document: inline CSS, inline SVG, no script and no
// external resource, so it renders the same offline.
var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ktpipe report — {{.Dataset}}</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.sub { color: #666; margin: 0 0 16px; }
table { border-collapse: collapse; margin: 6px 0 4px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f6f6f6; font-weight: 600; } td:first-child, th:first-child { text-align: left; }
.metrics td, .metrics th { text-align: left; white-space: normal; }
.ok { color: #2e7d32; font-weight: 600; } .bad { color: #c62828; font-weight: 600; } .na { color: #777; }
.elapsed { font-size: 12px; margin-left: 8px; padding: 1px 6px; border-radius: 8px; background: #e8f5e9; color: #2e7d32; font-weight: normal; }
.elapsed.slow { background: #ffebee; color: #c62828; }
.err { color: #c62828; } .more { color: #777; font-size: 12px; }
svg.chart { display: block; margin: 6px 0; font-size: 11px; }
svg .lbl { fill: #333; } svg .val, svg .tick { fill: #666; }
</style>
</head>
<body>
<h1>ktpipe report — dataset {{.Dataset}}</h1>
<p class="sub">Generated {{.Generated.Format "2006-01-02 15:04:05 UTC"}}. Reports and data quality of {{.Since}}. Every figure is read from the warehouse at that time; each query shows its own run time against the guide's 10 s target for standard reports.</p>

<h2>Success metrics</h2>
<table class="metrics" id="metrics">
<tr><th>metric</th><th>target</th><th>now</th><th>from</th></tr>
{{range .Metrics}}<tr data-metric="{{.Name}}"><td>{{.Name}}</td><td>{{.Target}}</td><td class="{{.Status}}">{{.Value}}</td><td>{{.Source}}</td></tr>
{{end}}</table>

<h2>Standard reports</h2>
{{range .Reports}}{{template "section" .}}{{end}}

<h2>Data quality</h2>
{{range .Quality}}{{template "section" .}}{{end}}
</body>
</html>
{{define "section"}}<section id="{{.Name}}" data-view="{{.Name}}">
<h3>{{.Title}} <code>{{.Name}}</code><span class="elapsed{{if not .Fast}} slow{{end}}" data-seconds="{{.Seconds}}">{{.Seconds}} s {{if .Fast}}&lt; 10 s{{else}}≥ 10 s{{end}}</span></h3>
{{if .Err}}<p class="err">could not be read: {{.Err}}</p>{{else}}
{{if .ChartTitle}}<figure><figcaption>{{.ChartTitle}}</figcaption>{{.Chart}}</figure>{{end}}
<table class="view"><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{else}}<tr><td colspan="{{len .Columns}}">(no rows)</td></tr>
{{end}}</table>
{{if gt .Total (len .Rows)}}<p class="more">first {{len .Rows}} of {{.Total}} rows read{{if .ChartTitle}} (the chart draws them all){{end}}</p>{{end}}
{{end}}</section>
{{end}}`))
