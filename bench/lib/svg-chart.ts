// Hand-written SVG charts for the benchmark report (no chart dependency): empirical CDFs, a
// box plot of several latency distributions, and an x/y line chart. Pure: each function
// takes data and returns the text of one standalone SVG document.
//
// Every series is drawn inside <g class="series" data-series="NAME">, and named in a legend,
// so that a test (or a person reading the file) can find it.

/** The report's colours: netsession blue, ConnMan orange, anything else grey (distinct for colour-blind readers too, with dashes). */
export const COLORS = { netsession: '#1f6fb4', connman: '#e8590c', reference: '#5c5f66' } as const;

export interface SeriesStyle {
  name: string;
  color: string;
  /** stroke-dasharray, e.g. '6 3' */
  dash?: string;
}

export type Shape = 'circle' | 'square' | 'triangle';

/** A marker of the given shape centred on (x, y). */
function marker(shape: Shape | undefined, x: number, y: number, color: string, title?: string): string {
  const t = title === undefined ? '' : `<title>${escapeXml(title)}</title>`;
  const close = (open: string): string => (t ? `${open}>${t}</${open.slice(1, open.indexOf(' '))}>` : `${open}/>`);
  if (shape === 'square') return close(`<rect x="${r1(x - 3.5)}" y="${r1(y - 3.5)}" width="7" height="7" fill="${color}"`);
  if (shape === 'triangle') return close(`<path d="M${r1(x)},${r1(y - 4.5)} L${r1(x + 4.5)},${r1(y + 3.5)} L${r1(x - 4.5)},${r1(y + 3.5)} Z" fill="${color}"`);
  return close(`<circle cx="${r1(x)}" cy="${r1(y)}" r="3.5" fill="${color}"`);
}

export interface CdfSeries extends SeriesStyle {
  values: readonly number[];
}

export interface XYSeries extends SeriesStyle {
  points: readonly (readonly [number, number])[];
  /** draw a marker at each point (default true) */
  markers?: boolean;
  /** its shape (default circle) */
  shape?: Shape;
  /** join the points (default true) */
  line?: boolean;
}

/** Nearest-rank percentile, as bench/lib/stats.ts; NaN for no values. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** A number as a tick label: 3 significant digits at most, k / M for large ones. */
export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e6) return `${trim((v / 1e6).toPrecision(3))}M`;
  if (a >= 100 || a === 0) return Math.round(v).toLocaleString('en');
  return trim(v.toPrecision(3));
}

function trim(s: string): string {
  return s.includes('.') && !s.includes('e') ? s.replace(/\.?0+$/, '') : s;
}

/** Linear ticks at 1, 2 or 5 × 10^k, covering [min, max]. */
export function niceTicks(min: number, max: number, count = 6): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (max <= min) max = min + (min === 0 ? 1 : Math.abs(min));
  const raw = (max - min) / Math.max(1, count - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag) as number;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const out: number[] = [];
  for (let v = lo; v <= hi + step / 2; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Log ticks: every decade covering [min, max] (min > 0), with 2 and 5 between when there are few decades. */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  let hi = Math.ceil(Math.log10(max));
  if (hi === lo) hi = lo + 1;
  const out: number[] = [];
  for (let e = lo; e <= hi; e++) {
    const d = 10 ** e;
    out.push(Number(d.toPrecision(12)));
    if (hi - lo <= 3 && e < hi) out.push(Number((2 * d).toPrecision(12)), Number((5 * d).toPrecision(12)));
  }
  return out;
}

interface Axis {
  min: number;
  max: number;
  log: boolean;
  ticks: number[];
}

function axis(values: readonly number[], log: boolean | 'auto', zero: boolean): Axis {
  const finite = values.filter((v) => Number.isFinite(v));
  let min = finite.length > 0 ? Math.min(...finite) : 0;
  let max = finite.length > 0 ? Math.max(...finite) : 1;
  const positive = finite.filter((v) => v > 0);
  const useLog = log === 'auto' ? positive.length > 0 && Math.max(...positive) / Math.min(...positive) > 50 : log && positive.length > 0;
  if (useLog) {
    min = Math.min(...positive);
    max = Math.max(...positive);
    const ticks = logTicks(min, max);
    return { min: ticks[0] as number, max: ticks[ticks.length - 1] as number, log: true, ticks };
  }
  if (zero) min = Math.min(0, min);
  const ticks = niceTicks(min, max);
  return { min: ticks[0] as number, max: ticks[ticks.length - 1] as number, log: false, ticks };
}

function scale(a: Axis, from: number, to: number): (v: number) => number {
  if (a.log) {
    const l0 = Math.log10(a.min);
    const l1 = Math.log10(a.max);
    return (v) => from + ((Math.log10(Math.max(v, a.min)) - l0) / (l1 - l0)) * (to - from);
  }
  return (v) => from + ((v - a.min) / (a.max - a.min || 1)) * (to - from);
}

const r1 = (v: number): string => (Math.round(v * 10) / 10).toString();

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function open(f: Frame, title: string, subtitle: string | undefined): string[] {
  const out = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="#ffffff"/>`,
    `<text x="${f.width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  if (subtitle) out.push(`<text x="${f.width / 2}" y="37" text-anchor="middle" font-size="11" fill="#444444">${escapeXml(subtitle)}</text>`);
  return out;
}

/** x axis with grid lines and label, below the plot area */
function xAxis(f: Frame, a: Axis, x: (v: number) => number, label: string): string[] {
  const y0 = f.height - f.bottom;
  const out = [`<g class="x-axis">`, `<line x1="${f.left}" y1="${y0}" x2="${f.width - f.right}" y2="${y0}" stroke="#333333"/>`];
  for (const t of a.ticks) {
    const px = r1(x(t));
    out.push(`<line x1="${px}" y1="${f.top}" x2="${px}" y2="${y0}" stroke="#e3e3e3"/>`);
    out.push(`<line x1="${px}" y1="${y0}" x2="${px}" y2="${y0 + 5}" stroke="#333333"/>`);
    out.push(`<text x="${px}" y="${y0 + 18}" text-anchor="middle">${escapeXml(fmtNum(t))}</text>`);
  }
  out.push(`<text x="${f.left + (f.width - f.left - f.right) / 2}" y="${y0 + 36}" text-anchor="middle">${escapeXml(label + (a.log ? ' (log scale)' : ''))}</text>`);
  out.push('</g>');
  return out;
}

function yAxis(f: Frame, a: Axis, y: (v: number) => number, label: string, fmt: (v: number) => string = fmtNum): string[] {
  const out = [`<g class="y-axis">`, `<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.height - f.bottom}" stroke="#333333"/>`];
  for (const t of a.ticks) {
    const py = r1(y(t));
    out.push(`<line x1="${f.left}" y1="${py}" x2="${f.width - f.right}" y2="${py}" stroke="#e3e3e3"/>`);
    out.push(`<line x1="${f.left - 5}" y1="${py}" x2="${f.left}" y2="${py}" stroke="#333333"/>`);
    out.push(`<text x="${f.left - 8}" y="${py}" text-anchor="end" dominant-baseline="middle">${escapeXml(fmt(t))}</text>`);
  }
  const cy = f.top + (f.height - f.top - f.bottom) / 2;
  out.push(`<text x="16" y="${r1(cy)}" text-anchor="middle" transform="rotate(-90 16 ${r1(cy)})">${escapeXml(label + (a.log ? ' (log scale)' : ''))}</text>`);
  out.push('</g>');
  return out;
}

const LEGEND_ROW = 18;

/** Height a legend of n entries takes below the x axis. */
const legendHeight = (n: number): number => (n === 0 ? 0 : n * LEGEND_ROW + 12);

/** The legend, below the x axis (outside the plot, so it never hides data): a swatch and text per entry. */
function legend(f: Frame, entries: { style: SeriesStyle; text: string; marker?: boolean; shape?: Shape; line?: boolean }[]): string[] {
  if (entries.length === 0) return [];
  const w = Math.min(f.width - f.left - f.right, Math.max(...entries.map((e) => e.text.length)) * 6.6 + 52);
  const h = legendHeight(entries.length);
  const x0 = f.left;
  const y0 = f.height - h - 4;
  const out = [`<g class="legend">`, `<rect x="${r1(x0)}" y="${y0}" width="${r1(w)}" height="${h}" fill="#ffffff" stroke="#bbbbbb"/>`];
  entries.forEach((e, i) => {
    const y = y0 + 15 + i * LEGEND_ROW;
    const dash = e.style.dash ? ` stroke-dasharray="${e.style.dash}"` : '';
    if (e.line !== false) out.push(`<line x1="${r1(x0 + 8)}" y1="${y}" x2="${r1(x0 + 32)}" y2="${y}" stroke="${e.style.color}" stroke-width="2.5"${dash}/>`);
    if (e.marker) out.push(marker(e.shape, x0 + 20, y, e.style.color));
    out.push(`<text x="${r1(x0 + 40)}" y="${y}" dominant-baseline="middle">${escapeXml(e.text)}</text>`);
  });
  out.push('</g>');
  return out;
}

function seriesOpen(name: string, extra = ''): string {
  return `<g class="series" data-series="${escapeXml(name)}"${extra}>`;
}

export interface CdfOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  series: CdfSeries[];
  /** log x axis: true, false, or 'auto' (when the values span more than 50×) */
  log?: boolean | 'auto';
  /** the unit written after p50/p99 in the legend, e.g. 'ms' */
  unit?: string;
  width?: number;
  height?: number;
}

/** Empirical CDFs (fraction of samples ≤ x), one step line per series; p50 and p99 guides. */
export function cdfChart(o: CdfOptions): string {
  const series = o.series.filter((s) => s.values.length > 0);
  const lh = legendHeight(series.length);
  const f: Frame = { width: o.width ?? 760, height: (o.height ?? 420) + lh, left: 64, right: 24, top: o.subtitle ? 50 : 36, bottom: 52 + lh };
  const xa = axis(
    series.flatMap((s) => s.values),
    o.log ?? 'auto',
    true,
  );
  const ya: Axis = { min: 0, max: 1, log: false, ticks: [0, 0.25, 0.5, 0.75, 1] };
  const x = scale(xa, f.left, f.width - f.right);
  const y = scale(ya, f.height - f.bottom, f.top);
  const out = open(f, o.title, o.subtitle);
  out.push(...xAxis(f, xa, x, o.xLabel));
  out.push(...yAxis(f, ya, y, 'fraction of samples ≤ x', (v) => `${Math.round(v * 100)}%`));
  for (const q of [0.5, 0.99]) {
    out.push(
      `<line class="guide" x1="${f.left}" y1="${r1(y(q))}" x2="${f.width - f.right}" y2="${r1(y(q))}" stroke="#999999" stroke-dasharray="2 3"/>`,
      `<text x="${f.width - f.right - 4}" y="${r1(y(q) - 4)}" text-anchor="end" font-size="10" fill="#777777">p${Math.round(q * 100)}</text>`,
    );
  }
  const unit = o.unit ? ` ${o.unit}` : '';
  for (const s of series) {
    const v = [...s.values].sort((a, b) => a - b);
    const n = v.length;
    let d = `M${r1(x(v[0] as number))},${r1(y(0))}`;
    for (let i = 0; i < n; i++) {
      const px = r1(x(v[i] as number));
      d += ` L${px},${r1(y(i / n))} L${px},${r1(y((i + 1) / n))}`;
    }
    d += ` L${r1(f.width - f.right)},${r1(y(1))}`;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    out.push(seriesOpen(s.name, ` data-n="${n}"`), `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`, '</g>');
  }
  out.push(
    ...legend(
      f,
      series.map((s) => ({ style: s, text: `${s.name} — n=${s.values.length}, p50 ${fmtNum(percentile(s.values, 50))}${unit}, p99 ${fmtNum(percentile(s.values, 99))}${unit}, max ${fmtNum(Math.max(...s.values))}${unit}` })),
    ),
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface BoxRow {
  label: string;
  series: CdfSeries[];
}

export interface BoxOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  rows: BoxRow[];
  log?: boolean | 'auto';
  width?: number;
}

/**
 * Horizontal box plots, a group of boxes per row (one per series): box p25–p75, a bar at
 * p50, whiskers p1–p99, a diamond at the maximum.
 */
export function boxChart(o: BoxOptions): string {
  const rows = o.rows.map((r) => ({ label: r.label, series: r.series.filter((s) => s.values.length > 0) })).filter((r) => r.series.length > 0);
  const band = 22;
  const gap = 14;
  const rowH = (r: (typeof rows)[number]): number => r.series.length * band + gap;
  const plotH = rows.reduce((a, r) => a + rowH(r), 0);
  const labelW = Math.min(440, Math.max(120, ...rows.map((r) => r.label.length * 6.9 + 20)));
  const f: Frame = { width: o.width ?? 960, height: 0, left: labelW, right: 24, top: o.subtitle ? 50 : 36, bottom: 52 };
  const names = [...new Map(rows.flatMap((r) => r.series.map((s) => [s.name, s] as const))).values()];
  const legendH = names.length * 18 + 16;
  f.height = f.top + legendH + plotH + f.bottom;
  const plotTop = f.top + legendH;
  const xa = axis(
    rows.flatMap((r) => r.series.flatMap((s) => [percentile(s.values, 1), Math.max(...s.values)])),
    o.log ?? 'auto',
    true,
  );
  const x = scale(xa, f.left, f.width - f.right);
  const out = open(f, o.title, o.subtitle);
  out.push(...xAxis({ ...f, top: plotTop }, xa, x, o.xLabel));
  out.push(`<line x1="${f.left}" y1="${plotTop}" x2="${f.left}" y2="${f.height - f.bottom}" stroke="#333333"/>`);
  // legend above the plot
  names.forEach((s, i) => {
    const y = f.top + 10 + i * 18;
    out.push(
      `<g class="legend"><rect x="${f.left + 10}" y="${y - 6}" width="24" height="12" fill="${s.color}" fill-opacity="0.35" stroke="${s.color}" stroke-width="1.5"/>`,
      `<text x="${f.left + 42}" y="${y}" dominant-baseline="middle">${escapeXml(s.name)}</text></g>`,
    );
  });
  out.push(
    `<text x="${f.width - f.right}" y="${f.top + 10}" text-anchor="end" font-size="10" fill="#555555">box p25–p75, bar p50, whiskers p1–p99, ◆ max</text>`,
  );
  let y0 = plotTop + gap / 2;
  for (const r of rows) {
    const h = r.series.length * band;
    out.push(`<text x="${f.left - 8}" y="${r1(y0 + h / 2)}" text-anchor="end" dominant-baseline="middle">${escapeXml(r.label)}</text>`);
    r.series.forEach((s, i) => {
      const cy = y0 + i * band + band / 2;
      const [p1, p25, p50, p75, p99] = [1, 25, 50, 75, 99].map((p) => x(percentile(s.values, p))) as [number, number, number, number, number];
      const mx = x(Math.max(...s.values));
      const bh = band - 8;
      out.push(
        seriesOpen(s.name, ` data-row="${escapeXml(r.label)}" data-n="${s.values.length}"`),
        `<title>${escapeXml(`${r.label} — ${s.name}: n=${s.values.length}, p50 ${fmtNum(percentile(s.values, 50))}, p99 ${fmtNum(percentile(s.values, 99))}, max ${fmtNum(Math.max(...s.values))}`)}</title>`,
        `<line x1="${r1(p1)}" y1="${r1(cy)}" x2="${r1(p25)}" y2="${r1(cy)}" stroke="${s.color}" stroke-width="1.5"/>`,
        `<line x1="${r1(p75)}" y1="${r1(cy)}" x2="${r1(p99)}" y2="${r1(cy)}" stroke="${s.color}" stroke-width="1.5"/>`,
        `<line x1="${r1(p1)}" y1="${r1(cy - 4)}" x2="${r1(p1)}" y2="${r1(cy + 4)}" stroke="${s.color}" stroke-width="1.5"/>`,
        `<line x1="${r1(p99)}" y1="${r1(cy - 4)}" x2="${r1(p99)}" y2="${r1(cy + 4)}" stroke="${s.color}" stroke-width="1.5"/>`,
        `<rect x="${r1(p25)}" y="${r1(cy - bh / 2)}" width="${r1(Math.max(1, p75 - p25))}" height="${bh}" fill="${s.color}" fill-opacity="0.35" stroke="${s.color}" stroke-width="1.5"/>`,
        `<line x1="${r1(p50)}" y1="${r1(cy - bh / 2)}" x2="${r1(p50)}" y2="${r1(cy + bh / 2)}" stroke="${s.color}" stroke-width="3"/>`,
        `<path d="M${r1(mx)},${r1(cy - 4)} L${r1(mx + 4)},${r1(cy)} L${r1(mx)},${r1(cy + 4)} L${r1(mx - 4)},${r1(cy)} Z" fill="${s.color}"/>`,
        '</g>',
      );
    });
    y0 += rowH(r);
    out.push(`<line x1="${f.left}" y1="${r1(y0 - gap / 2)}" x2="${f.width - f.right}" y2="${r1(y0 - gap / 2)}" stroke="#f0f0f0"/>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface LineOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: XYSeries[];
  width?: number;
  /** of the plot and axes; the legend below adds to it */
  height?: number;
}

/** Points joined by lines (linear axes from 0), a marker at each, one series per entry. */
export function lineChart(o: LineOptions): string {
  const series = o.series.filter((s) => s.points.length > 0);
  const lh = legendHeight(series.length);
  const f: Frame = { width: o.width ?? 760, height: (o.height ?? 420) + lh, left: 72, right: 24, top: o.subtitle ? 50 : 36, bottom: 52 + lh };
  const pts = series.flatMap((s) => s.points);
  const xa = axis(
    pts.map((p) => p[0]),
    false,
    true,
  );
  const ya = axis(
    pts.map((p) => p[1]),
    false,
    true,
  );
  const x = scale(xa, f.left, f.width - f.right);
  const y = scale(ya, f.height - f.bottom, f.top);
  const out = open(f, o.title, o.subtitle);
  out.push(...xAxis(f, xa, x, o.xLabel));
  out.push(...yAxis(f, ya, y, o.yLabel));
  for (const s of series) {
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    out.push(seriesOpen(s.name, ` data-n="${s.points.length}"`));
    if (s.line !== false && s.points.length > 1) {
      const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${r1(x(p[0]))},${r1(y(p[1]))}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    }
    if (s.markers !== false) {
      for (const p of s.points) out.push(marker(s.shape, x(p[0]), y(p[1]), s.color, `${s.name}: ${fmtNum(p[0])}, ${fmtNum(p[1])}`));
    }
    out.push('</g>');
  }
  out.push(
    ...legend(
      f,
      series.map((s) => ({ style: s, text: s.name, marker: s.markers !== false, ...(s.shape ? { shape: s.shape } : {}), line: s.line !== false && s.points.length > 1 })),
    ),
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
