/* jobq-server's dashboard. No framework and no build step: the browser runs
 * this file as it is. Every piece of data reaches the page as text
 * (textContent, attribute values): nothing a job carries is ever parsed as
 * markup, and the server's Content-Security-Policy runs no inline script.
 *
 * What it shows, and where it comes from:
 *   queue depth per kind and state, totals   GET /v1/stats (administrator key)
 *   throughput and error rate over time      /v1/stats sampled every few seconds:
 *                                            the change of the store's counters
 *   the job list, filtered and paged         GET /v1/jobs?state=&kind=&owner=&cursor=
 *   one job: payload, result, attempts       GET /v1/jobs/:id
 *   its live progress                        GET /v1/jobs/:id/events (SSE, read with
 *                                            fetch: EventSource cannot send the key);
 *                                            long polls (?wait=) if the stream is missing
 *   its webhook deliveries                   GET /v1/jobs/:id/deliveries
 *   cancel                                   DELETE /v1/jobs/:id
 *
 * The API key lives in sessionStorage (this tab only). A key in the URL
 * fragment (#key=...) is taken and removed from the address bar at once;
 * #job=<id> opens that job. */
'use strict';

(() => {
  const SAMPLE_MS = 5000;           // how often the stats are sampled
  const WINDOW_MS = 10 * 60 * 1000; // how much history the chart keeps
  const PAGE_SIZE = 20;
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

  const $ = (id) => document.getElementById(id);

  /* ---- building DOM without markup ---- */

  function add(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) add(el, k);
      else el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }

  // h('td', {class: 'num', title: x, onclick: f}, 'text', child, ...)
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    return add(el, kids);
  }

  const SVGNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    return add(el, kids);
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
      else if (k === 'vars') for (const [vk, vv] of Object.entries(v)) el.style.setProperty(vk, vv);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  /* ---- formatting ---- */

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  function fmtTime(ms) {
    if (ms === null || ms === undefined || ms === 0) return '—';
    const d = typeof ms === 'string' ? new Date(ms) : new Date(Number(ms));
    if (isNaN(d)) return String(ms);
    const now = new Date();
    const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    if (d.toDateString() === now.toDateString()) return hms;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
  }

  function isoTitle(ms) {
    if (!ms) return null;
    const d = typeof ms === 'string' ? new Date(ms) : new Date(Number(ms));
    return isNaN(d) ? null : d.toISOString();
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '—';
    ms = Math.max(0, ms);
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
    const hr = Math.floor(m / 60);
    if (hr < 48) return `${hr}h ${pad(m % 60)}m`;
    return `${Math.floor(hr / 24)}d ${hr % 24}h`;
  }

  function fmtAgo(ms, now) {
    if (!ms) return '—';
    const d = (now || Date.now()) - Number(ms);
    if (d < 5000) return 'just now';
    return `${fmtDuration(d)} ago`;
  }

  function fmtNum(n) {
    if (n === null || n === undefined) return '—';
    return Number(n).toLocaleString('en-US');
  }

  function fmtRate(x) {
    if (x === null || x === undefined || !isFinite(x)) return '—';
    if (x === 0) return '0';
    if (x < 10) return x.toFixed(1);
    return Math.round(x).toLocaleString('en-US');
  }

  function fmtPct(x) {
    if (x === null || x === undefined || !isFinite(x)) return '—';
    const p = x * 100;
    return `${p === 0 || p >= 10 ? Math.round(p) : p.toFixed(1)}%`;
  }

  function shortId(id) {
    return id && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
  }

  function badge(state) {
    return h('span', {class: `badge ${state}`, data: {state}}, state);
  }

  function pretty(v) {
    if (typeof v === 'string') {
      try { return JSON.stringify(JSON.parse(v), null, 2); } catch (e) { return v; }
    }
    return JSON.stringify(v, null, 2);
  }

  /* ---- the key, the fragment and the API ---- */

  const store = {
    get(k) { try { return sessionStorage.getItem(k); } catch (e) { return null; } },
    set(k, v) { try { sessionStorage.setItem(k, v); } catch (e) { /* private mode */ } },
    del(k) { try { sessionStorage.removeItem(k); } catch (e) { /* private mode */ } },
  };

  const state = {
    key: store.get('jobq.key') || '',
    stats: null,
    statsError: null,
    samples: [],
    filters: {state: '', kind: '', owner: ''},
    cursors: [null],
    page: 0,
    nextCursor: null,
    jobs: [],
    selected: null,
    job: null,
    deliveries: null,
    deliveriesError: null,
    events: [],
    follow: null, // {id, ctl, mode}
  };

  // Reads #key=...&job=... : the key goes to sessionStorage and out of the
  // address bar (history.replaceState: no entry with the key remains).
  function readFragment() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ''));
    let job = p.get('job');
    if (p.has('key')) {
      state.key = p.get('key') || '';
      store.set('jobq.key', state.key);
      p.delete('key');
      const rest = p.toString();
      history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    }
    return job;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({accept: 'application/json'}, opts.headers || {});
    if (state.key) headers['x-api-key'] = state.key;
    let r;
    try {
      r = await fetch(path, Object.assign({}, opts, {headers, cache: 'no-store'}));
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'the server cannot be reached');
    }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok || (body && body.success === false)) {
      const err = body && body.error ? body.error : {};
      throw new ApiError(r.status, err.code || `http_${r.status}`,
                         err.message || `${r.status} ${r.statusText}`);
    }
    return body;
  }

  function notice(text, kind) {
    const n = $('notice');
    if (!text) { n.hidden = true; return; }
    n.className = `notice${kind ? ` ${kind}` : ''}`;
    clear(n).appendChild(document.createTextNode(text));
    n.hidden = false;
  }

  function authProblem(e) {
    if (e && e.status === 401) {
      notice(state.key ? 'The server refused this API key. Enter another one above.'
                       : 'Enter an API key above (an administrator key shows the whole queue).',
             'error');
      return true;
    }
    return false;
  }

  /* ---- health ---- */

  async function refreshHealth() {
    const dot = $('health-dot'), text = $('health-text');
    try {
      const r = await fetch('/healthz', {cache: 'no-store'});
      const b = await r.json().catch(() => ({}));
      const ok = r.ok && b.status === 'ok';
      dot.className = `dot ${ok ? 'ok' : 'bad'}`;
      let t = ok ? 'healthy' : `storage failing${b.code ? ` (${b.code})` : ''}`;
      if (ok && b.uptimeSeconds !== undefined) t += ` · up ${fmtDuration(b.uptimeSeconds * 1000)}`;
      text.textContent = t;
    } catch (e) {
      dot.className = 'dot bad';
      text.textContent = 'server unreachable';
    }
  }

  /* ---- stats: cards, the queue table, the samples ---- */

  // The store's cumulative counters: totals if there, else the kinds' sum.
  function counters(st) {
    if (st.totals) return {done: (st.totals.succeeded || 0) + (st.totals.failed || 0), failed: st.totals.failed || 0};
    let done = 0, failed = 0, any = false;
    for (const k of Object.values(st.kinds || {})) {
      if (!k.counts) continue;
      any = true;
      done += (k.counts.succeeded || 0) + (k.counts.failed || 0);
      failed += k.counts.failed || 0;
    }
    return any ? {done, failed} : null;
  }

  function loadSamples() {
    try {
      const s = JSON.parse(store.get('jobq.samples') || '[]');
      if (Array.isArray(s)) state.samples = s.filter((x) => x && typeof x.t === 'number');
    } catch (e) { state.samples = []; }
  }

  function addSample(st) {
    const c = counters(st);
    if (!c) return;
    const t = typeof st.time === 'number' ? st.time : Date.now();
    const last = state.samples[state.samples.length - 1];
    if (last && t <= last.t) return;
    state.samples.push({t, done: c.done, failed: c.failed});
    state.samples = state.samples.filter((x) => x.t > t - WINDOW_MS - SAMPLE_MS);
    store.set('jobq.samples', JSON.stringify(state.samples));
  }

  // Rates between consecutive samples (per minute), each at the later time.
  // A gap of more than a few intervals (the tab slept) or a counter that went
  // down (another store) starts a new segment.
  function rates() {
    const segs = [];
    let seg = [];
    const s = state.samples;
    for (let i = 1; i < s.length; i++) {
      const a = s[i - 1], b = s[i];
      const dt = (b.t - a.t) / 60000;
      const dd = b.done - a.done, df = b.failed - a.failed;
      if (dt <= 0 || dd < 0 || df < 0 || b.t - a.t > 6 * SAMPLE_MS) {
        if (seg.length) segs.push(seg);
        seg = [];
        continue;
      }
      seg.push({t: b.t, done: dd / dt, failed: df / dt, dd, df});
    }
    if (seg.length) segs.push(seg);
    return segs;
  }

  function windowSummary() {
    const s = state.samples;
    if (s.length < 2) return null;
    const a = s[0], b = s[s.length - 1];
    const mins = (b.t - a.t) / 60000;
    const dd = b.done - a.done, df = b.failed - a.failed;
    if (mins <= 0 || dd < 0 || df < 0) return null;
    return {mins, perMin: dd / mins, errorRate: dd > 0 ? df / dd : null, done: dd, failed: df};
  }

  function kindsOf(st) {
    return Object.keys(st.kinds || {}).sort();
  }

  function sumKinds(st, field) {
    let n = 0;
    for (const k of Object.values(st.kinds || {})) n += Number(k[field] || 0);
    return n;
  }

  function card(label, value, hint, color, id) {
    return h('div', {class: 'card', id, vars: color ? {'--c': color} : null},
             h('div', {class: 'label'}, label),
             h('div', {class: 'value'}, value),
             h('div', {class: 'hint', title: hint || null}, hint || '\u00a0'));
  }

  function renderCards() {
    const el = clear($('cards'));
    const st = state.stats;
    const w = windowSummary();
    if (!st) {
      const why = state.statsError || 'loading…';
      for (const l of ['Queued', 'Running', 'Succeeded', 'Failed', 'Throughput', 'Error rate'])
        el.appendChild(card(l, '—', why));
      return;
    }
    const oldest = Math.max(0, ...Object.values(st.kinds || {}).map((k) => k.oldestQueuedMs || 0));
    const slots = sumKinds(st, 'concurrency');
    const t = st.totals || {};
    const winLabel = w ? `last ${fmtDuration(w.mins * 60000)}` : 'collecting samples…';
    el.appendChild(card('Queued', fmtNum(sumKinds(st, 'queued')),
                        oldest ? `oldest waiting ${fmtDuration(oldest)}` : (sumKinds(st, 'scheduled') ? `${fmtNum(sumKinds(st, 'scheduled'))} scheduled later` : 'none waiting'),
                        'var(--queued)', 'card-queued'));
    el.appendChild(card('Running', fmtNum(sumKinds(st, 'running')),
                        slots ? `of ${fmtNum(slots)} worker slots` : 'across all workers',
                        'var(--running)', 'card-running'));
    el.appendChild(card('Succeeded', fmtNum(t.succeeded), 'since the store began', 'var(--succeeded)', 'card-succeeded'));
    el.appendChild(card('Failed', fmtNum(t.failed),
                        t.retried ? `${fmtNum(t.retried)} retried · ${fmtNum(t.cancelled || 0)} cancelled` : `${fmtNum(t.cancelled || 0)} cancelled`,
                        'var(--failed)', 'card-failed'));
    el.appendChild(card('Throughput', w ? `${fmtRate(w.perMin)}/min` : '—', winLabel, 'var(--accent)', 'card-throughput'));
    const allDone = (t.succeeded || 0) + (t.failed || 0);
    const er = w && w.errorRate !== null ? w.errorRate : (allDone ? (t.failed || 0) / allDone : null);
    el.appendChild(card('Error rate', fmtPct(er),
                        w && w.errorRate !== null ? winLabel : 'of all finished jobs', '#b7791f', 'card-error-rate'));
  }

  function renderQueue() {
    const el = clear($('queue'));
    const st = state.stats;
    $('stats-time').textContent = st && st.time ? `as of ${fmtTime(st.time)}` : '';
    if (!st) {
      el.appendChild(h('p', {class: 'none'}, state.statsError || 'Loading…'));
      return;
    }
    const kinds = kindsOf(st);
    const dl = clear($('kinds'));
    for (const k of kinds) dl.appendChild(h('option', {value: k}));
    if (kinds.length === 0) {
      el.appendChild(h('p', {class: 'none'}, 'No jobs in this store yet.'));
      return;
    }
    const numCell = (v, col) => h('td', {class: `num${!v ? ' zero' : ''}`, data: {col}}, fmtNum(v || 0));
    const rows = kinds.map((name) => {
      const k = st.kinds[name];
      const c = k.counts || {};
      return h('tr', {data: {kind: name}, title: `Show ${name} jobs`, class: 'clickable',
                      onclick: () => { $('f-kind').value = name; applyFilters(); }},
               h('td', {class: 'mono'}, name),
               numCell(k.queued, 'queued'), numCell(k.scheduled, 'scheduled'), numCell(k.running, 'running'),
               h('td', {class: 'num', data: {col: 'oldest'}}, k.oldestQueuedMs ? fmtDuration(k.oldestQueuedMs) : '—'),
               numCell(c.succeeded, 'succeeded'), numCell(c.failed, 'failed'),
               h('td', {class: 'num', data: {col: 'errorRate'}}, fmtPct(k.errorRate)),
               h('td', {class: 'num', data: {col: 'duration'}},
                 k.durationMs ? `${fmtDuration(k.durationMs.p50)} · ${fmtDuration(k.durationMs.p95)}` : '—'));
    });
    const tot = (f) => kinds.reduce((n, name) => n + Number(st.kinds[name][f] || 0), 0);
    const totc = (f) => kinds.reduce((n, name) => n + Number((st.kinds[name].counts || {})[f] || 0), 0);
    const total = h('tr', {class: 'total', data: {kind: '*'}},
                    h('td', null, 'all kinds'),
                    numCell(tot('queued'), 'queued'), numCell(tot('scheduled'), 'scheduled'),
                    numCell(tot('running'), 'running'), h('td', null), numCell(totc('succeeded'), 'succeeded'),
                    numCell(totc('failed'), 'failed'), h('td', null), h('td', null));
    el.appendChild(h('table', {class: 'small', id: 'queue-table'},
      h('thead', null, h('tr', null,
        h('th', null, 'Kind'), h('th', {class: 'num'}, 'Queued'),
        h('th', {class: 'num', title: 'Queued to run later'}, 'Later'),
        h('th', {class: 'num'}, 'Running'), h('th', {class: 'num', title: 'How long the oldest queued job has waited'}, 'Oldest'),
        h('th', {class: 'num'}, 'Done'), h('th', {class: 'num'}, 'Failed'),
        h('th', {class: 'num', title: 'Failed of finished'}, 'Err %'),
        h('th', {class: 'num', title: 'Run time, median · 95th percentile'}, 'p50 · p95'))),
      h('tbody', null, rows, total)));
    el.appendChild(storeFacts(st));
  }

  // Below the table: the store's health and the webhook outbox, what an
  // operator checks next when jobs pile up.
  function storeFacts(st) {
    const items = [];
    const sto = st.storage || {};
    items.push(h('span', {class: 'fact', id: 'storage-health', title: sto.lastError || null}, 'Storage ',
      h('b', {class: sto.healthy === false ? 'bad' : 'good'},
        sto.healthy === false ? `failing${sto.lastCode ? ` (${sto.lastCode})` : ''}` : 'healthy'),
      sto.errors ? ` · ${fmtNum(sto.errors)} errors` : ''));
    const ob = st.webhooks && st.webhooks.outbox;
    if (ob) {
      items.push(h('span', {class: 'fact', id: 'outbox'}, 'Webhook outbox ',
        h('b', null, fmtNum(ob.pending || 0)), ' pending · ', h('b', null, fmtNum(ob.sending || 0)), ' sending · ',
        h('b', null, fmtNum(ob.delivered || 0)), ' delivered · ',
        h('b', {class: ob.failed ? 'bad' : null}, fmtNum(ob.failed || 0)), ' failed'));
    }
    if (st.rateLimited) items.push(h('span', {class: 'fact'}, 'Rate-limited ', h('b', null, fmtNum(st.rateLimited))));
    if (st.totals && st.totals.retried) items.push(h('span', {class: 'fact'}, 'Retried ', h('b', null, fmtNum(st.totals.retried))));
    return h('div', {class: 'store-facts'}, items);
  }

  /* ---- the chart: finished and failed jobs per minute ---- */

  // The top of the y axis: four steps of 1, 2, 2.5 or 5 times a power of
  // ten (at least 1), so that every grid line has a round label.
  function niceMax(v) {
    const want = Math.max(1, v / 4);
    const p = Math.pow(10, Math.floor(Math.log10(want)));
    for (const m of [1, 2, 2.5, 5, 10]) if (want <= m * p) return 4 * m * p;
    return 40 * p;
  }

  function renderChart() {
    const W = 640, H = 220, L = 44, R = 12, T = 12, B = 28;
    const pw = W - L - R, ph = H - T - B;
    const segs = rates();
    const last = state.samples[state.samples.length - 1];
    const now = last ? last.t : Date.now();
    // The x axis spans 2, 5 or 10 minutes: the least that holds the samples,
    // so that a page just opened does not draw into one corner.
    const have = state.samples.length ? now - state.samples[0].t : 0;
    const span = [2, 5, 10].map((m) => m * 60000).find((w) => w >= have) || WINDOW_MS;
    const tickStep = span <= 120000 ? 30000 : (span <= 300000 ? 60000 : 120000);
    const t0 = now - span;
    let ymax = 0;
    for (const s of segs) for (const p of s) ymax = Math.max(ymax, p.done, p.failed);
    ymax = niceMax(ymax);
    const x = (t) => L + (Math.max(0, t - t0) / span) * pw;
    const y = (v) => T + ph - (v / ymax) * ph;
    const root = svg('svg', {viewBox: `0 0 ${W} ${H}`, id: 'chart-svg', role: 'img',
                             'aria-label': `Finished and failed jobs per minute, last ${span / 60000} minutes`,
                             data: {samples: String(state.samples.length), points: String(segs.reduce((n, s) => n + s.length, 0))}});
    // grid and axes
    for (let i = 0; i <= 4; i++) {
      const v = (ymax * i) / 4;
      const yy = y(v);
      root.appendChild(svg('line', {class: 'grid', x1: L, x2: W - R, y1: yy, y2: yy}));
      root.appendChild(svg('text', {class: 'axis', x: L - 6, y: yy + 4, 'text-anchor': 'end'},
                           Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(1)));
    }
    for (let ago = span; ago >= 0; ago -= tickStep) {
      const label = ago === 0 ? 'now' : (ago >= 60000 ? `−${ago / 60000} min` : `−${ago / 1000} s`);
      root.appendChild(svg('text', {class: 'axis', x: x(now - ago), y: H - 8,
                                    'text-anchor': ago === span ? 'start' : (ago === 0 ? 'end' : 'middle')}, label));
    }
    if (segs.length === 0) {
      root.appendChild(svg('text', {class: 'waiting', x: L + pw / 2, y: T + ph / 2, 'text-anchor': 'middle'},
                           state.stats ? `Collecting samples (one every ${SAMPLE_MS / 1000} s)…` : 'No statistics yet'));
    }
    for (const s of segs) {
      const pts = (f) => s.map((p) => `${x(p.t).toFixed(1)},${y(p[f]).toFixed(1)}`).join(' ');
      if (s.length > 1) {
        const area = `${x(s[0].t).toFixed(1)},${y(0)} ${pts('done')} ${x(s[s.length - 1].t).toFixed(1)},${y(0)}`;
        root.appendChild(svg('polygon', {class: 'area', points: area}));
      }
      root.appendChild(svg('polyline', {class: 'line done', points: pts('done')}));
      root.appendChild(svg('polyline', {class: 'line failed', points: pts('failed')}));
      const lastp = s[s.length - 1];
      root.appendChild(svg('circle', {class: 'pt done', cx: x(lastp.t), cy: y(lastp.done), r: 3.5}));
      root.appendChild(svg('circle', {class: 'pt failed', cx: x(lastp.t), cy: y(lastp.failed), r: 3.5}));
    }
    clear($('chart')).appendChild(root);

    const w = windowSummary();
    const lg = clear($('chart-legend'));
    lg.appendChild(h('span', null, h('span', {class: 'sw', vars: {background: 'var(--accent)'}}), 'finished / min ',
                     h('b', null, w ? fmtRate(w.perMin) : '—')));
    lg.appendChild(h('span', null, h('span', {class: 'sw', vars: {background: 'var(--failed)'}}), 'failed / min ',
                     h('b', null, w ? fmtRate(w.failed / w.mins) : '—')));
    lg.appendChild(h('span', {id: 'chart-error-rate'}, 'error rate ', h('b', null, w ? fmtPct(w.errorRate) : '—')));
    $('chart-window').textContent = w ? `${fmtNum(w.done)} finished in the last ${fmtDuration(w.mins * 60000)}` : `up to the last ${WINDOW_MS / 60000} minutes`;
  }

  async function refreshStats() {
    if (!state.key) {
      state.stats = null;
      state.statsError = 'needs an API key';
    } else {
      try {
        const b = await api('/v1/stats');
        state.stats = b.stats;
        state.statsError = null;
        addSample(b.stats);
      } catch (e) {
        state.stats = null;
        state.statsError = e.status === 403 ? 'Queue statistics need an administrator key; this key shows its own jobs.'
                                            : `statistics unavailable: ${e.message}`;
        authProblem(e);
      }
    }
    renderCards();
    renderQueue();
    renderChart();
  }

  /* ---- the job list ---- */

  function jobQuery() {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(state.filters)) if (v) p.set(k, v);
    p.set('limit', String(PAGE_SIZE));
    const c = state.cursors[state.page];
    if (c) p.set('cursor', c);
    return `/v1/jobs?${p}`;
  }

  function progressCell(job) {
    const pct = Math.max(0, Math.min(100, Number(job.progress || 0)));
    return h('div', {class: 'bar-cell'},
             h('div', {class: `mini ${job.state}`}, h('span', {vars: {width: `${pct}%`}})),
             h('span', {class: 'pct'}, `${pct}%`));
  }

  function jobRow(job) {
    return h('tr', {data: {id: job.id, state: job.state, kind: job.kind},
                    class: job.id === state.selected ? 'selected' : null,
                    onclick: () => openJob(job.id)},
             h('td', {class: 'id', title: job.id}, shortId(job.id)),
             h('td', {class: 'mono'}, job.kind),
             h('td', {data: {col: 'state'}}, badge(job.state)),
             h('td', null, job.owner || h('span', {class: 'muted'}, '—')),
             h('td', {data: {col: 'progress'}}, progressCell(job)),
             h('td', {class: 'num', title: job.maxAttempts ? `at most ${job.maxAttempts}` : 'limit: the worker\'s default'},
               job.maxAttempts ? `${job.attempts || 0}/${job.maxAttempts}` : String(job.attempts || 0)),
             h('td', {title: isoTitle(job.createdAt)}, fmtAgo(job.createdAt)));
  }

  function renderJobs(err) {
    const body = clear($('jobs-body'));
    if (err) {
      body.appendChild(h('tr', {class: 'emptyrow'}, h('td', {colspan: 7}, err)));
    } else if (state.jobs.length === 0) {
      body.appendChild(h('tr', {class: 'emptyrow'}, h('td', {colspan: 7},
        state.key ? 'No jobs match.' : 'Enter an API key to see jobs.')));
    } else {
      for (const j of state.jobs) body.appendChild(jobRow(j));
    }
    $('page-prev').disabled = state.page === 0;
    $('page-first').disabled = state.page === 0;
    $('page-next').disabled = !state.nextCursor;
    $('page-info').textContent = state.jobs.length
      ? `page ${state.page + 1} · ${state.jobs.length} job${state.jobs.length === 1 ? '' : 's'}${state.nextCursor ? ' · more older' : ''}`
      : '';
  }

  async function refreshJobs() {
    if (!state.key) {
      state.jobs = [];
      state.nextCursor = null;
      renderJobs();
      return;
    }
    try {
      const b = await api(jobQuery());
      state.jobs = b.jobs || [];
      state.nextCursor = b.nextCursor || null;
      renderJobs();
      if (!state.statsError || state.stats) notice(null);
    } catch (e) {
      if (!authProblem(e)) renderJobs(`Cannot list jobs: ${e.message}`);
      else renderJobs('—');
    }
  }

  function applyFilters() {
    state.filters = {state: $('f-state').value, kind: $('f-kind').value.trim(), owner: $('f-owner').value.trim()};
    state.cursors = [null];
    state.page = 0;
    refreshJobs();
  }

  function updateRow(job) {
    const i = state.jobs.findIndex((j) => j.id === job.id);
    if (i < 0) return;
    state.jobs[i] = Object.assign({}, state.jobs[i], job);
    const old = document.querySelector(`#jobs-body tr[data-id="${CSS.escape(job.id)}"]`);
    if (old) old.replaceWith(jobRow(state.jobs[i]));
  }

  /* ---- one job ---- */

  let dref = {}; // the parts of the detail that live updates touch

  function section(title, id, ...kids) {
    return h('section', {id, class: 'd-section'}, h('h3', null, title), kids);
  }

  function renderDetail() {
    const job = state.job;
    $('detail-empty').hidden = !!job;
    const el = $('detail-body');
    el.hidden = !job;
    clear(el);
    dref = {};
    if (!job) return;
    const live = h('span', {class: 'live', id: 'detail-live'}, h('span', {class: 'dot'}), h('span', null, ''));
    dref.live = live;
    dref.badge = h('span', {id: 'detail-state'}, badge(job.state));
    el.appendChild(h('div', {class: 'd-head'},
      h('span', {class: 'kind mono'}, job.kind), dref.badge, live,
      h('button', {type: 'button', class: 'quiet close', title: 'Close', onclick: closeJob}, '×')));
    el.appendChild(h('div', {class: 'd-id', id: 'detail-id'}, job.id));

    const pct = Math.max(0, Math.min(100, Number(job.progress || 0)));
    dref.fill = h('div', {class: 'fill', vars: {width: `${pct}%`}});
    dref.pct = h('span', {class: 'pct-text'}, `${pct}%`);
    dref.step = h('span', {class: 'step'}, job.step || (job.state === 'queued' ? 'waiting for a worker' : ''));
    dref.progress = h('div', {class: `progress ${job.state}`, id: 'detail-progress', data: {progress: String(pct)}},
      h('div', {class: 'track', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct}, dref.fill),
      h('div', {class: 'caption'}, dref.step, dref.pct));
    el.appendChild(dref.progress);

    dref.error = h('div', {class: 'errbox', id: 'detail-error', hidden: !job.error}, job.error || '');
    el.appendChild(dref.error);

    const started = job.startedAt, finished = job.finishedAt;
    const facts = [
      ['Owner', job.owner || '—'],
      ['Priority', String(job.priority ?? 0)],
      ['Attempts', job.maxAttempts ? `${job.attempts || 0} of ${job.maxAttempts}` : `${job.attempts || 0} (limit: the worker's default)`],
      ['Created', fmtTime(job.createdAt), isoTitle(job.createdAt)],
    ];
    if (job.runAt && job.runAt > (job.createdAt || 0) + 1000) facts.push(['Runs at', fmtTime(job.runAt), isoTitle(job.runAt)]);
    if (started) facts.push(['Started', fmtTime(started), isoTitle(started)]);
    if (finished) facts.push(['Finished', fmtTime(finished), isoTitle(finished)]);
    if (started) facts.push(['Duration', '']);
    if (job.position !== undefined && job.state === 'queued') facts.push(['Position', `#${job.position}`]);
    if (job.etaMs !== undefined && !TERMINAL.has(job.state)) facts.push(['ETA', fmtDuration(job.etaMs)]);
    if (job.cancelRequested) facts.push(['Cancel', 'requested']);
    el.appendChild(h('dl', {class: 'facts'}, facts.map(([k, v, t]) => [h('dt', null, k),
      h('dd', {title: t || null, id: k === 'Duration' ? 'detail-duration' : null}, v)])));
    dref.duration = $('detail-duration');
    updateClock();

    dref.actions = h('div', {class: 'd-actions'});
    el.appendChild(dref.actions);
    renderActions();

    el.appendChild(section('Payload', 'detail-payload', h('pre', {class: 'json'}, pretty(job.payload))));
    if (job.result !== undefined) el.appendChild(section('Result', 'detail-result', h('pre', {class: 'json'}, pretty(job.result))));

    const log = Array.isArray(job.attemptLog) ? job.attemptLog : [];
    el.appendChild(section('Attempts', 'detail-attempts', log.length === 0
      ? h('p', {class: 'none'}, 'Not started yet.')
      : h('table', {class: 'small'},
          h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'Started'), h('th', null, 'Took'), h('th', null, 'Outcome'))),
          h('tbody', null, log.map((a, i) => h('tr', {data: {attempt: String(i + 1)}},
            h('td', null, String(i + 1)),
            h('td', {title: isoTitle(a.startedAt)}, fmtTime(a.startedAt)),
            h('td', null, a.finishedAt ? fmtDuration(a.finishedAt - a.startedAt) : 'running'),
            h('td', {class: a.error ? 'errtext' : null},
              a.error ? a.error : (a.finishedAt ? (i === log.length - 1 && job.state === 'succeeded' ? 'succeeded' : 'ended') : 'in progress'))))))));

    dref.events = h('div', {class: 'events'});
    dref.eventsSection = section('Live events', 'detail-events', dref.events);
    el.appendChild(dref.eventsSection);
    renderEvents();

    dref.deliveries = h('div', {id: 'detail-deliveries-body'});
    el.appendChild(section('Webhook deliveries', 'detail-deliveries', dref.deliveries));
    renderDeliveries();
    renderLive();
  }

  // The running time, kept current between changes.
  function updateClock() {
    const job = state.job;
    if (!dref.duration || !job || !job.startedAt) return;
    const end = job.finishedAt || (TERMINAL.has(job.state) ? job.startedAt : Date.now());
    dref.duration.textContent = fmtDuration(end - job.startedAt) + (job.finishedAt || TERMINAL.has(job.state) ? '' : ' so far');
  }

  // The first click of a cancel arms it for 4 s. The arming belongs to the
  // job, not to the button: a progress update re-renders the panel (and
  // makes a new button) at any moment, and must not disarm it.
  const cancelArm = {id: null, until: 0, timer: null};

  function renderActions() {
    const job = state.job;
    if (!dref.actions || !job) return;
    clear(dref.actions);
    if ((job.state === 'queued' || job.state === 'running') && !job.cancelRequested) {
      const armed = () => cancelArm.id === job.id && Date.now() < cancelArm.until;
      const btn = h('button', {type: 'button', class: 'danger', id: 'detail-cancel'},
                    armed() ? 'Click again to cancel' : 'Cancel job');
      btn.addEventListener('click', async () => {
        if (!armed()) { // two clicks: no accidental cancels, no blocking dialog
          btn.textContent = 'Click again to cancel';
          clearTimeout(cancelArm.timer);
          Object.assign(cancelArm, {id: job.id, until: Date.now() + 4000});
          cancelArm.timer = setTimeout(() => {
            cancelArm.id = null;
            const b = document.getElementById('detail-cancel');
            if (b && !b.disabled) b.textContent = 'Cancel job';
          }, 4000);
          return;
        }
        clearTimeout(cancelArm.timer);
        cancelArm.id = null;
        btn.disabled = true;
        btn.textContent = 'Cancelling…';
        try {
          const b = await api(`/v1/jobs/${encodeURIComponent(job.id)}`, {method: 'DELETE'});
          if (b.job && state.job && b.job.id === state.job.id) {
            state.job = b.job;
            updateRow(b.job);
            renderDetail();
            if (!TERMINAL.has(b.job.state)) startFollow(b.job.id);
          }
        } catch (e) {
          btn.disabled = false;
          btn.textContent = 'Cancel job';
          notice(`Cancel failed: ${e.message}`, 'error');
        }
      });
      dref.actions.appendChild(btn);
    }
  }

  function renderEvents() {
    if (!dref.events) return;
    dref.eventsSection.hidden = state.events.length === 0;
    clear(dref.events);
    dref.events.appendChild(h('table', {class: 'small'}, h('tbody', null,
      state.events.slice(-30).reverse().map((e) => h('tr', null,
        h('td', {class: 'muted'}, fmtTime(e.time || Date.now())),
        h('td', null, e.type),
        h('td', {class: 'num'}, e.progress !== undefined ? `${e.progress}%` : ''),
        h('td', null, e.error || e.step || ''))))));
  }

  function renderDeliveries() {
    const el = dref.deliveries;
    if (!el) return;
    clear(el);
    if (state.deliveriesError) {
      el.appendChild(h('p', {class: 'none'}, state.deliveriesError));
      return;
    }
    const list = state.deliveries;
    if (!list) {
      el.appendChild(h('p', {class: 'none'}, 'Loading…'));
      return;
    }
    if (list.length === 0) {
      el.appendChild(h('p', {class: 'none', id: 'no-deliveries'}, 'No webhook deliveries for this job.'));
      return;
    }
    // One block per delivery (a table does not fit the panel): what, where
    // to, how it stands, and the receiver's last answer.
    el.appendChild(h('div', {class: 'deliveries'}, list.map((d) => {
      const next = d.state === 'pending' && d.nextAt ? new Date(d.nextAt).getTime() : 0;
      const when = next ? (next > Date.now() ? `next try ${fmtTime(d.nextAt)}` : `due since ${fmtTime(d.nextAt)}`)
                        : `updated ${fmtTime(d.updatedAt)}`;
      const answer = [d.lastStatus ? `HTTP ${d.lastStatus}` : null, d.lastError || null].filter(Boolean).join(' · ');
      return h('div', {class: 'delivery', data: {delivery: d.id || '', state: d.state || ''}},
        h('div', {class: 'dl-top'},
          h('span', {class: 'mono dl-type'}, d.type || '—'), badge(d.state || 'pending'),
          h('span', {class: 'muted'}, `${d.attempts ?? 0} ${d.attempts === 1 ? 'try' : 'tries'}`),
          h('span', {class: 'muted dl-when', title: isoTitle(d.state === 'pending' ? d.nextAt : d.updatedAt)}, when)),
        h('div', {class: 'dl-to mono', title: d.url || null}, d.endpoint ? `${d.endpoint} → ` : '', d.url || '(the endpoint\'s URL)'),
        answer ? h('div', {class: `dl-answer${d.state === 'delivered' ? '' : ' bad'}`}, answer) : null);
    })));
  }

  function renderLive() {
    if (!dref.live) return;
    const f = state.follow;
    const dot = dref.live.firstChild, text = dref.live.lastChild;
    const job = state.job;
    if (job && TERMINAL.has(job.state)) {
      dot.className = 'dot';
      text.textContent = 'finished';
    } else if (f && f.mode === 'sse') {
      dot.className = 'dot on';
      text.textContent = 'live';
    } else if (f && f.mode === 'poll') {
      dot.className = 'dot on';
      text.textContent = 'live (polling)';
    } else {
      dot.className = 'dot';
      text.textContent = f ? 'connecting…' : '';
    }
  }

  // A change of the job (an SSE event, a poll's answer): only the parts that
  // move are touched, so the bar's transition runs and the text stays put.
  function applyJob(job, full) {
    if (!state.job || job.id !== state.job.id) return;
    const before = state.job.state;
    state.job = Object.assign({}, state.job, job);
    updateRow(state.job);
    if (full || before !== state.job.state || !dref.fill) {
      renderDetail();
      return;
    }
    const pct = Math.max(0, Math.min(100, Number(state.job.progress || 0)));
    dref.fill.style.width = `${pct}%`;
    dref.pct.textContent = `${pct}%`;
    dref.progress.dataset.progress = String(pct);
    dref.progress.querySelector('[role=progressbar]').setAttribute('aria-valuenow', String(pct));
    if (state.job.step) dref.step.textContent = state.job.step;
    dref.error.hidden = !state.job.error;
    dref.error.textContent = state.job.error || '';
    updateClock();
  }

  async function loadDeliveries(id) {
    try {
      const b = await api(`/v1/jobs/${encodeURIComponent(id)}/deliveries`);
      if (state.selected !== id) return;
      // The route answers {deliveries: {deliveries: [...], nextCursor}}.
      const d = b.deliveries;
      state.deliveries = Array.isArray(d) ? d : (d && Array.isArray(d.deliveries) ? d.deliveries : []);
      state.deliveriesError = null;
    } catch (e) {
      if (state.selected !== id) return;
      state.deliveriesError = `Deliveries unavailable: ${e.message}`;
    }
    renderDeliveries();
  }

  async function loadJob(id) {
    const b = await api(`/v1/jobs/${encodeURIComponent(id)}`);
    return b.job;
  }

  async function openJob(id) {
    if (!id) return;
    if (state.selected !== id) {
      stopFollow();
      state.selected = id;
      state.job = null;
      state.events = [];
      state.deliveries = null;
      state.deliveriesError = null;
    }
    const frag = new URLSearchParams(location.hash.replace(/^#/, ''));
    if (frag.get('job') !== id) {
      frag.set('job', id);
      history.replaceState(null, '', `#${frag}`);
    }
    for (const tr of document.querySelectorAll('#jobs-body tr'))
      tr.classList.toggle('selected', tr.dataset.id === id);
    if (!state.key) return;
    try {
      const job = await loadJob(id);
      if (state.selected !== id) return;
      state.job = job;
      renderDetail();
      loadDeliveries(id);
      if (!TERMINAL.has(job.state)) startFollow(id);
    } catch (e) {
      if (state.selected !== id) return;
      if (authProblem(e)) return;
      state.job = null;
      renderDetail();
      $('detail-empty').hidden = false;
      $('detail-empty').textContent = e.status === 404 ? `No job ${id} (or not one this key may see).` : `Cannot read job: ${e.message}`;
    }
  }

  function closeJob() {
    stopFollow();
    state.selected = null;
    state.job = null;
    const frag = new URLSearchParams(location.hash.replace(/^#/, ''));
    frag.delete('job');
    const rest = frag.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    $('detail-empty').textContent = 'Select a job to see its payload, result, attempts, live progress and webhook deliveries.';
    renderDetail();
    for (const tr of document.querySelectorAll('#jobs-body tr.selected')) tr.classList.remove('selected');
  }

  /* ---- live progress: SSE read with fetch, long polls as the fallback ---- */

  function stopFollow() {
    if (state.follow) state.follow.ctl.abort();
    state.follow = null;
  }

  const sleep = (ms, signal) => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
  });

  function startFollow(id) {
    stopFollow();
    const f = {id, ctl: new AbortController(), mode: null, lastId: null};
    state.follow = f;
    renderLive();
    follow(f);
  }

  async function finished(f) {
    // The terminal event is in: read the job once more (attempt log, times)
    // and its deliveries, which the terminal commit has just queued.
    try {
      const job = await loadJob(f.id);
      if (state.selected === f.id) applyJob(job, true);
    } catch (e) { /* the next tick shows it */ }
    if (state.follow === f) state.follow = null;
    renderLive();
    loadDeliveries(f.id);
    refreshStats();
  }

  async function follow(f) {
    let backoff = 1000;
    while (!f.ctl.signal.aborted) {
      const r = await streamOnce(f);
      if (f.ctl.signal.aborted) return;
      if (r === 'terminal') return finished(f);
      if (r === 'unsupported') return pollLoop(f);
      f.mode = null;
      renderLive();
      await sleep(backoff, f.ctl.signal);
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  // One connection: 'terminal' (the job ended), 'unsupported' (no such
  // route: an older server), or 'again' (dropped: reconnect with
  // Last-Event-ID).
  async function streamOnce(f) {
    const headers = {accept: 'text/event-stream'};
    if (state.key) headers['x-api-key'] = state.key;
    if (f.lastId) headers['last-event-id'] = f.lastId;
    let res;
    try {
      res = await fetch(`/v1/jobs/${encodeURIComponent(f.id)}/events`, {headers, signal: f.ctl.signal, cache: 'no-store'});
    } catch (e) {
      return 'again';
    }
    const type = res.headers.get('content-type') || '';
    if (!res.ok || !type.startsWith('text/event-stream') || !res.body) {
      let code = '';
      try { code = ((await res.json()).error || {}).code || ''; } catch (e) { /* not JSON */ }
      // The job's own 404 is JOBQ_ENOTFOUND; a server without the stream
      // answers the route's not_found (or 405): then poll instead.
      if (res.status === 404 && code === 'JOBQ_ENOTFOUND') return 'terminal';
      if (res.status === 404 || res.status === 405 || res.status === 501) return 'unsupported';
      return res.status === 401 || res.status === 403 ? 'unsupported' : 'again';
    }
    f.mode = 'sse';
    renderLive();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '', ev = {event: '', data: [], id: null}, terminal = false;
    const dispatch = () => {
      if (ev.id !== null) f.lastId = ev.id;
      if (ev.data.length) {
        if (onEvent(f, ev.event || 'message', ev.data.join('\n'))) terminal = true;
      }
      ev = {event: '', data: [], id: null};
    };
    const line = (l) => {
      if (l === '') return dispatch();
      if (l[0] === ':') return; // a comment: the keep-alive ping
      const c = l.indexOf(':');
      const field = c < 0 ? l : l.slice(0, c);
      let value = c < 0 ? '' : l.slice(c + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') ev.event = value;
      else if (field === 'data') ev.data.push(value);
      else if (field === 'id' && !value.includes('\0')) ev.id = value;
    };
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        for (;;) {
          const m = /\r\n|\r|\n/.exec(buf);
          if (!m) break;
          if (m[0] === '\r' && m.index === buf.length - 1) break; // maybe \r\n split across chunks
          line(buf.slice(0, m.index));
          buf = buf.slice(m.index + m[0].length);
        }
      }
    } catch (e) {
      return f.ctl.signal.aborted ? 'again' : (terminal ? 'terminal' : 'again');
    }
    return terminal || (state.job && state.job.id === f.id && TERMINAL.has(state.job.state)) ? 'terminal' : 'again';
  }

  // One event: returns true if it was the job's terminal one.
  function onEvent(f, name, data) {
    if (state.selected !== f.id) return false;
    let d;
    try { d = JSON.parse(data); } catch (e) { return false; }
    if (name === 'snapshot') {
      applyJob(d, true);
      return TERMINAL.has(d.state);
    }
    if (name === 'reset') {
      loadJob(f.id).then((j) => applyJob(j, true)).catch(() => {});
      return false;
    }
    const change = {};
    for (const k of ['state', 'progress', 'step', 'error', 'result']) if (d[k] !== undefined) change[k] = d[k];
    if (d.attempt !== undefined) change.attempts = d.attempt;
    state.events.push({type: d.type || name, time: d.time, progress: d.progress, step: d.step, error: d.error});
    if (state.events.length > 200) state.events.splice(0, state.events.length - 200);
    applyJob(Object.assign({id: f.id}, change), false);
    renderEvents();
    return TERMINAL.has(d.state) || ['succeeded', 'failed', 'cancelled'].includes(d.type || name);
  }

  // Without the stream: long polls (?wait=), at most one a second even if
  // the server answers at once.
  async function pollLoop(f) {
    f.mode = 'poll';
    renderLive();
    let last = state.job ? JSON.stringify([state.job.state, state.job.progress, state.job.step]) : '';
    while (!f.ctl.signal.aborted) {
      const t0 = Date.now();
      try {
        const b = await api(`/v1/jobs/${encodeURIComponent(f.id)}?wait=25`, {signal: f.ctl.signal});
        if (f.ctl.signal.aborted) return;
        const j = b.job;
        const now = JSON.stringify([j.state, j.progress, j.step]);
        if (now !== last) {
          state.events.push({type: j.state === (state.job || {}).state ? 'progress' : j.state, time: Date.now(),
                             progress: j.progress, step: j.step, error: j.error});
          last = now;
          renderEvents();
        }
        applyJob(j, false);
        if (TERMINAL.has(j.state)) return finished(f);
      } catch (e) {
        if (f.ctl.signal.aborted) return;
        if (e.status === 404) return finished(f);
        if (e.status === 401 || e.status === 403) { // the key changed: the next tick starts again
          authProblem(e);
          if (state.follow === f) state.follow = null;
          renderLive();
          return;
        }
      }
      await sleep(Math.max(0, 1000 - (Date.now() - t0)), f.ctl.signal);
    }
  }

  /* ---- wiring ---- */

  function tick() {
    updateClock();
    refreshHealth();
    refreshStats();
    refreshJobs();
    if (state.selected && state.key) {
      loadDeliveries(state.selected);
      // Not followed (finished, or waiting to reconnect): read it again.
      if (state.job && !state.follow && !TERMINAL.has(state.job.state)) openJob(state.selected);
    }
  }

  function start() {
    const job = readFragment();
    loadSamples();
    $('key-input').value = state.key;
    if (!state.key) notice('Enter an API key above (an administrator key shows the whole queue).');

    $('key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      state.key = $('key-input').value.trim();
      store.set('jobq.key', state.key);
      notice(state.key ? null : 'Enter an API key above (an administrator key shows the whole queue).');
      tick();
      if (state.selected) openJob(state.selected);
    });
    $('key-forget').addEventListener('click', () => {
      state.key = '';
      store.del('jobq.key');
      $('key-input').value = '';
      closeJob();
      notice('Enter an API key above (an administrator key shows the whole queue).');
      tick();
    });
    $('filters').addEventListener('submit', (e) => { e.preventDefault(); applyFilters(); });
    $('f-state').addEventListener('change', applyFilters);
    $('f-clear').addEventListener('click', () => {
      $('f-state').value = '';
      $('f-kind').value = '';
      $('f-owner').value = '';
      applyFilters();
    });
    $('page-next').addEventListener('click', () => {
      if (!state.nextCursor) return;
      state.cursors[state.page + 1] = state.nextCursor;
      state.page++;
      refreshJobs();
    });
    $('page-prev').addEventListener('click', () => {
      if (state.page === 0) return;
      state.page--;
      refreshJobs();
    });
    $('page-first').addEventListener('click', () => {
      state.page = 0;
      state.cursors = [null];
      refreshJobs();
    });
    window.addEventListener('hashchange', () => {
      const j = readFragment();
      if (j && j !== state.selected) openJob(j);
      if (state.key) tick();
    });

    renderCards();
    renderChart();
    tick();
    if (job) openJob(job);
    setInterval(tick, SAMPLE_MS);
    setInterval(updateClock, 1000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
