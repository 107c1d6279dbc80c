package report

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// The charts are SVG drawn here, inline in the page: no script, no
// network at view time. Every data mark has class "mark", its value in
// data-value and a <title> tooltip, so a test (or a reader) can check
// each one against the warehouse.

var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

const chartWidth = 720

func esc(s string) string { return template.HTMLEscapeString(s) }

// bar is one labelled value of a horizontal bar chart.
type bar struct {
	Label string
	Value float64
	Text  string // the value as shown
}

// hbars draws horizontal bars, longest scaled to the width.
func hbars(id string, bars []bar) template.HTML {
	if len(bars) == 0 {
		return empty(id)
	}
	const rowH, labelW, valueW = 22, 220, 160
	max := 0.0
	for _, b := range bars {
		max = maxf(max, b.Value)
	}
	h := rowH*len(bars) + 8
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg id="%s" class="chart" role="img" width="%d" height="%d" viewBox="0 0 %d %d">`, id, chartWidth, h, chartWidth, h)
	for i, b := range bars {
		y := i*rowH + 4
		w := 0.0
		if max > 0 {
			w = b.Value / max * float64(chartWidth-labelW-valueW)
		}
		fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="end" class="lbl">%s</text>`, labelW-6, y+15, esc(b.Label))
		fmt.Fprintf(&sb, `<rect class="mark" data-label="%s" data-value="%g" x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>`,
			esc(b.Label), b.Value, labelW, y, maxf(w, 1), rowH-6, palette[0], esc(b.Label), esc(b.Text))
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" class="val">%s</text>`, float64(labelW)+maxf(w, 1)+4, y+15, esc(b.Text))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// stacked draws one stacked column per x label, one colour per series,
// with a legend.
func stacked(id string, xs, series []string, value func(x, s string) float64, unit string) template.HTML {
	if len(xs) == 0 {
		return empty(id)
	}
	const top, bottom, left, legendH = 10, 40, 60, 22
	plotH := 220
	totals := make([]float64, len(xs))
	max := 0.0
	for i, x := range xs {
		for _, s := range series {
			totals[i] += value(x, s)
		}
		max = maxf(max, totals[i])
	}
	legendRows := (len(series) + 4) / 5
	h := top + plotH + bottom + legendRows*legendH
	colW := float64(chartWidth-left-10) / float64(len(xs))
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg id="%s" class="chart" role="img" width="%d" height="%d" viewBox="0 0 %d %d">`, id, chartWidth, h, chartWidth, h)
	axis(&sb, left, top, plotH, max, unit)
	for i, x := range xs {
		y := float64(top + plotH)
		cx := float64(left) + float64(i)*colW
		for j, s := range series {
			v := value(x, s)
			if v == 0 {
				continue
			}
			bh := 0.0
			if max > 0 {
				bh = v / max * float64(plotH)
			}
			y -= bh
			fmt.Fprintf(&sb, `<rect class="mark" data-x="%s" data-series="%s" data-value="%g" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s%.2f</title></rect>`,
				esc(x), esc(s), v, cx+1, y, maxf(colW-2, 1), bh, palette[j%len(palette)], esc(x), esc(s), unit, v)
		}
		if len(xs) <= 16 || i%(len(xs)/8+1) == 0 {
			fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="middle" class="tick">%s</text>`, cx+colW/2, top+plotH+14, esc(shortDay(x)))
		}
	}
	for j, s := range series {
		lx, ly := left+(j%5)*130, top+plotH+bottom+(j/5)*legendH
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" class="lbl">%s</text>`,
			lx, ly-10, palette[j%len(palette)], lx+16, ly, esc(s))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// hourly draws events per hour on a continuous hour axis; an hour with
// no events is a gap, drawn as a red band so it cannot be missed.
func hourly(id string, hours []time.Time, counts map[time.Time]int64) template.HTML {
	if len(hours) == 0 {
		return empty(id)
	}
	const top, bottom, left = 10, 30, 60
	plotH := 180
	max := 0.0
	for _, n := range counts {
		max = maxf(max, float64(n))
	}
	h := top + plotH + bottom
	colW := float64(chartWidth-left-10) / float64(len(hours))
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg id="%s" class="chart" role="img" width="%d" height="%d" viewBox="0 0 %d %d">`, id, chartWidth, h, chartWidth, h)
	axis(&sb, left, top, plotH, max, "")
	for i, t := range hours {
		x := float64(left) + float64(i)*colW
		label := t.Format("2006-01-02 15:00")
		n, ok := counts[t]
		if !ok || n == 0 {
			fmt.Fprintf(&sb, `<rect class="gap" data-x="%s" x="%.1f" y="%d" width="%.1f" height="%d" fill="#e15759" fill-opacity="0.35"><title>%s: no events (gap)</title></rect>`,
				label, x, top, maxf(colW, 1), plotH, label)
			continue
		}
		bh := float64(n) / max * float64(plotH)
		fmt.Fprintf(&sb, `<rect class="mark" data-x="%s" data-value="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d events</title></rect>`,
			label, n, x, float64(top+plotH)-bh, maxf(colW-0.5, 0.5), bh, palette[0], label, n)
		if t.Hour() == 0 {
			fmt.Fprintf(&sb, `<text x="%.1f" y="%d" class="tick">%s</text>`, x, top+plotH+14, t.Format("01-02"))
		}
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// point is one value in time.
type point struct {
	T time.Time
	V float64
}

// line draws values over time with a dashed threshold line.
func line(id string, pts []point, threshold float64, unit string) template.HTML {
	if len(pts) == 0 {
		return empty(id)
	}
	const top, bottom, left = 10, 30, 60
	plotH := 180
	max := threshold * 1.2
	t0, t1 := pts[0].T, pts[0].T
	for _, p := range pts {
		max = maxf(max, p.V)
		if p.T.Before(t0) {
			t0 = p.T
		}
		if p.T.After(t1) {
			t1 = p.T
		}
	}
	span := t1.Sub(t0).Seconds()
	xOf := func(t time.Time) float64 {
		if span == 0 {
			return float64(left) + float64(chartWidth-left-10)/2
		}
		return float64(left) + t.Sub(t0).Seconds()/span*float64(chartWidth-left-10)
	}
	yOf := func(v float64) float64 { return float64(top+plotH) - v/max*float64(plotH) }
	h := top + plotH + bottom
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg id="%s" class="chart" role="img" width="%d" height="%d" viewBox="0 0 %d %d">`, id, chartWidth, h, chartWidth, h)
	axis(&sb, left, top, plotH, max, "")
	fmt.Fprintf(&sb, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e15759" stroke-dasharray="4 3"><title>alert threshold %g%s</title></line>`,
		left, chartWidth-10, yOf(threshold), yOf(threshold), threshold, unit)
	var poly []string
	for _, p := range pts {
		poly = append(poly, fmt.Sprintf("%.1f,%.1f", xOf(p.T), yOf(p.V)))
	}
	fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, palette[0], strings.Join(poly, " "))
	for _, p := range pts {
		fmt.Fprintf(&sb, `<circle class="mark" data-x="%s" data-value="%g" cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: %g%s</title></circle>`,
			p.T.UTC().Format(time.RFC3339), p.V, xOf(p.T), yOf(p.V), palette[0], p.T.UTC().Format(time.RFC3339), p.V, unit)
	}
	fmt.Fprintf(&sb, `<text x="%d" y="%d" class="tick">%s</text><text x="%d" y="%d" text-anchor="end" class="tick">%s</text>`,
		left, top+plotH+14, t0.UTC().Format("01-02 15:04"), chartWidth-10, top+plotH+14, t1.UTC().Format("01-02 15:04"))
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

func axis(sb *strings.Builder, left, top, plotH int, max float64, unit string) {
	fmt.Fprintf(sb, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#999"/>`, left, left, top, top+plotH)
	fmt.Fprintf(sb, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#999"/>`, left, chartWidth-10, top+plotH, top+plotH)
	fmt.Fprintf(sb, `<text x="%d" y="%d" text-anchor="end" class="tick">%s%s</text>`, left-4, top+8, unit, compact(max))
	fmt.Fprintf(sb, `<text x="%d" y="%d" text-anchor="end" class="tick">0</text>`, left-4, top+plotH)
}

// empty is a chart with no data: present, and saying so.
func empty(id string) template.HTML {
	return template.HTML(fmt.Sprintf(`<svg id="%s" class="chart empty" width="%d" height="40"><text x="10" y="25" class="lbl">no data</text></svg>`, id, chartWidth))
}

func compact(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func shortDay(s string) string {
	if len(s) == 10 {
		return s[5:]
	}
	return s
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}
