// resweep dashboard: a single page over the coordinator's JSON API (/api/v1,
// docs/http-api.md). Every figure shown comes from the API: the results table shows
// the statistics GetResults computed; the only arithmetic here is drawing's (the
// mean line and band of a cell's curves over its seeds, at each epoch).
//
// Pages (hash routes): #/ sweeps, #/sweep/<id> one sweep, #/workers.
// Updates: each page polls its endpoints every POLL_MS while the tab is visible,
// sending the last ETag (If-None-Match): an unchanged reply is a 304 and redraws
// nothing. The token (when the coordinator needs one) is asked once and kept in
// sessionStorage (this tab only).
'use strict';

(function () {
  const params = new URLSearchParams(window.location.search);
  // ?poll=MS changes the polling period (at least 500 ms; default 5 s).
  const POLL_MS = Math.max(500, Number(params.get('poll')) || 5000);
  // ?page_size=N: rows per page of the sweeps and runs tables (0 or absent: the API's
  // default, 500 sweeps and 1,000 runs).
  const PAGE_SIZE = Math.max(0, Math.floor(Number(params.get('page_size')) || 0));
  // Curves are larger replies: fetched every CURVE_EVERY polls.
  const CURVE_EVERY = Math.max(1, Number(params.get('curve_every')) || 2);
  const CURVE_POINTS = 400;  // downsample: at most about this many points per run
  const TOKEN_KEY = 'resweep-token';
  const STATES = ['queued', 'leased', 'running', 'succeeded', 'failed', 'cancelled'];
  // Okabe-Ito, most distinct first; yellow last (weak on white). Past 8 cells the
  // colours repeat with another dash pattern.
  const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000',
                   '#F0E442'];
  const DASHES = [null, [8, 4], [2, 3], [10, 3, 2, 3]];
  const METRICS = [
    ['test_error', 'testError', 'test error (%)', true],
    ['train_error', 'trainError', 'train error (%)', true],
    ['test_loss', 'testLoss', 'test loss', false],
    ['train_loss', 'trainLoss', 'train loss', false],
    ['lr', 'lr', 'learning rate', false],
  ];

  const $main = document.getElementById('main');
  const $status = document.getElementById('status');
  const $updated = document.getElementById('updated');
  const $forget = document.getElementById('forget-token');

  // State the page exposes for tests and curious users (window.resweepDashboard).
  const dash = {
    page: '',
    charts: {},   // name -> Dygraph
    ready: {},    // what has been drawn at least once on this page
    polls: 0,
    notModified: 0,
  };
  window.resweepDashboard = dash;

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // As the CLI prints them (cli/format.cc): a fraction as a percent with 2 decimals.
  function pct(fraction) {
    return fraction === null || fraction === undefined || fraction < 0 ? '-'
                                                                       : (fraction * 100).toFixed(2);
  }
  function fixed(x, digits) { return Number(x).toFixed(digits); }
  function pValue(p) { return p < 0.001 ? '<0.001' : fixed(p, 3); }
  function int64(s) { return Number(s || 0); }  // JSON mapping prints int64 as strings

  function duration(seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) return '?';
    if (seconds < 10) return fixed(seconds, 1) + ' s';
    if (seconds < 90) return fixed(seconds, 0) + ' s';
    if (seconds < 90 * 60) return fixed(seconds / 60, 0) + ' min';
    if (seconds < 36 * 3600) return fixed(seconds / 3600, 1) + ' h';
    return fixed(seconds / 86400, 1) + ' d';
  }
  function timestamp(ms) {
    if (!ms) return '-';
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
           `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  }
  function stateBadge(state) {
    return el('span', {class: 'state state-' + state, text: state});
  }
  function numCell(text, key, value) {
    const attrs = {class: 'num', text};
    if (key) attrs.dataset = {key, value: value === null || value === undefined ? '' : String(value)};
    return el('td', attrs);
  }
  function tableWrap(table, label) {
    return el('div', {class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0'},
              table);
  }
  function showError(text) { $status.textContent = text || ''; }
  // Text as HTML that shows it literally. Only for what must be handed over as HTML:
  // dygraphs puts its axis labels, tick labels, legend and formatters' output in
  // innerHTML, and strings from the API (grid values, cell labels) are anyone's.
  // Everywhere else the page builds DOM nodes and sets textContent.
  function escapeHtml(text) {
    return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
                       .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }
  // dygraphs' legendFormatter, as its default one but escaping the series labels here
  // (not relying on the library to): data.xHTML and each series' yHTML come from the
  // valueFormatters below, which escape what they return; dashHTML and the colours are
  // the chart's own options.
  function legendHtml(data) {
    const lines = data.dygraph.getOption('labelsSeparateLines');
    const parts = [];
    if (data.x === undefined) {
      if (data.dygraph.getOption('legend') !== 'always') return '';
      for (const s of data.series) {
        if (!s.isVisible) continue;
        parts.push(`<span style="font-weight: bold; color: ${s.color};">${s.dashHTML} ` +
                   `${escapeHtml(s.label)}</span>`);
      }
      return parts.join(lines ? '<br>' : ' ');
    }
    for (const s of data.series) {
      if (!s.isVisible || !(s.y || s.yHTML)) continue;
      parts.push(`${lines ? '<br>' : ''}<span${s.isHighlighted ? ' class="highlight"' : ''}> ` +
                 `<b><span style="color: ${s.color};">${escapeHtml(s.label)}</span></b>:&#160;` +
                 `${s.yHTML}</span>`);
    }
    return data.xHTML + ':' + parts.join('');
  }

  function count(n) { return Number(n).toLocaleString('en-US'); }
  // A query string of the parameters that are set ('' and 0 are left out).
  function query(parts) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(parts)) if (v) q.set(k, v);
    const text = q.toString();
    return text ? '?' + text : '';
  }

  // Paging over a list of the API. Its page tokens are opaque and lead forward only
  // (docs/http-api.md), so the token of every page reached so far is kept: Previous
  // goes back by them, and a poll asks again for the page shown, never page 1.
  // `noun` names the rows ("runs"); onMove() is called when the user changes page.
  // The caller draws each reply, then calls shown(rows, nextPageToken, total):
  // `total` (null when unknown) is the length of the whole list, for "runs X-Y of Z".
  function pager(noun, onMove) {
    let tokens = [''];  // tokens[i]: the page_token of page i (0-based)
    let starts = [0];   // starts[i]: how many rows come before page i (as seen)
    let index = 0;      // the page shown
    const prev = el('button', {type: 'button', class: 'page-prev', 'aria-label': `previous page of ${noun}`,
                               text: '← Previous', disabled: true});
    const next = el('button', {type: 'button', class: 'page-next', 'aria-label': `next page of ${noun}`,
                               text: 'Next →', disabled: true});
    const where = el('span', {class: 'page-where', 'aria-live': 'polite'});
    const node = el('div', {class: 'controls pager', role: 'group', 'aria-label': `pages of ${noun}`},
                    prev, where, next);
    function move(to) {
      if (to < 0 || to >= tokens.length || to === index) return;
      index = to;
      where.textContent = `page ${index + 1}: loading`;
      onMove();
    }
    prev.addEventListener('click', () => move(index - 1));
    next.addEventListener('click', () => move(index + 1));
    return {
      node,
      token() { return tokens[index]; },
      page() { return index + 1; },
      // Back to page 1 (a new filter: the tokens led through another list).
      reset() { tokens = ['']; starts = [0]; index = 0; },
      shown(rows, nextToken, total) {
        // Pages past this one were reached through its old next token: when that
        // changed, they no longer follow it.
        if ((tokens[index + 1] || '') !== (nextToken || '')) {
          tokens.length = starts.length = index + 1;
          if (nextToken) tokens.push(nextToken);
        }
        starts[index + 1] = starts[index] + rows;
        const focused = document.activeElement;
        prev.disabled = index === 0;
        next.disabled = index + 1 >= tokens.length;
        // At an end, the keyboard's focus stays on the pager (a disabled button drops it).
        if (focused === next && next.disabled && !prev.disabled) prev.focus();
        if (focused === prev && prev.disabled && !next.disabled) next.focus();
        // One page: nothing to page through (the count stays).
        prev.hidden = next.hidden = index === 0 && !nextToken;
        const first = starts[index] + 1, last = starts[index] + rows;
        const of = total !== null && total !== undefined && total >= last ? ` of ${count(total)}` : '';
        const range = last > first ? `${count(first)}–${count(last)}` : count(first);
        const text = rows ? `${noun} ${range}${of} · page ${index + 1}` : `page ${index + 1}: no ${noun}`;
        if (where.textContent !== text) where.textContent = text;  // aria-live: news only
        node.dataset.page = String(index + 1);
      },
    };
  }

  // ------------------------------------------------------------- API client

  class ApiError extends Error {
    constructor(status, body) {
      super(body && body.message ? `${body.code}: ${body.message}` : `HTTP ${status}`);
      this.status = status;
    }
  }

  // url -> {etag, data}: the last 200 reply of each URL, for If-None-Match.
  const replies = new Map();

  // GET api/v1/<path>: {data, changed} (changed false: a 304, the data of the last
  // reply). Throws ApiError.
  async function api(path) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers['Authorization'] = 'Bearer ' + token;
    const last = replies.get(path);
    if (last) headers['If-None-Match'] = last.etag;
    // no-store: the browser's cache stays out of it, so that a 304 reaches us.
    const res = await fetch('api/v1/' + path, {headers, cache: 'no-store'});
    dash.polls++;
    if (res.status === 304 && last) {
      dash.notModified++;
      return {data: last.data, changed: false};
    }
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) throw new ApiError(res.status, body);
    const etag = res.headers.get('ETag');
    if (etag) replies.set(path, {etag, data: body});
    return {data: body, changed: true};
  }

  // ---------------------------------------------------------------- routing

  let current = null;  // {stop()} of the page shown

  function route() {
    if (current) current.stop();
    current = null;
    dash.charts = {};
    dash.ready = {};
    showError('');
    const hash = window.location.hash || '#/';
    const sweep = hash.match(/^#\/sweep\/([^/?]+)/);
    let page;
    if (sweep) {
      let id = null;
      try {
        id = decodeURIComponent(sweep[1]);
      } catch (e) {  // a malformed escape (URIError), e.g. #/sweep/%E0
        page = errorPage('Not a sweep address',
                         `"${sweep[1]}" is not a sweep id or name: it has a malformed %-escape ` +
                         `(${e.message}).`);
      }
      if (id !== null) page = sweepPage(id);
    } else if (hash.startsWith('#/workers')) page = workersPage();
    else page = sweepsPage();
    dash.page = page.name;
    for (const name of ['sweeps', 'workers']) {
      const link = document.getElementById('nav-' + name);
      if (page.name === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (page.refresh) current = poller(page);
  }

  // A page that only says what went wrong (nothing to poll).
  function errorPage(heading, text) {
    $main.replaceChildren(el('h1', {text: heading}), el('p', {class: 'error-text', id: 'page-error', text}),
                          el('p', {}, el('a', {href: '#/', text: '← all sweeps'})));
    showError(text);
    return {name: 'error'};
  }

  // Calls page.refresh(round) now and every POLL_MS while the tab is visible.
  function poller(page) {
    let timer = null, stopped = false, round = 0;
    async function tick() {
      timer = null;
      if (stopped) return;
      if (!document.hidden) {
        try {
          await page.refresh(round++);
          if (stopped) return;
          showError('');
          $updated.textContent = 'updated ' + new Date().toLocaleTimeString();
        } catch (e) {
          if (stopped) return;
          // No token, or one that may not read (a worker's, say): ask for another.
          if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
            askToken(e.message, e.status === 403);
            return;  // polling resumes once a token is given
          }
          // Also on the console, with its stack, for whoever debugs the page.
          console.error('resweep dashboard: update failed:', e);
          showError('Cannot update: ' + e.message + ' (retrying)');
        }
      }
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    }
    function onVisible() { if (!document.hidden && timer !== null) { clearTimeout(timer); tick(); } }
    document.addEventListener('visibilitychange', onVisible);
    tick();
    return {
      stop() {
        stopped = true;
        if (timer !== null) clearTimeout(timer);
        document.removeEventListener('visibilitychange', onVisible);
      },
    };
  }

  // The token form; `refused`: the token given was refused (a 403), `why` says why.
  function askToken(why, refused) {
    $main.replaceChildren(el('form', {
      class: 'token-form',
      onsubmit: (ev) => {
        ev.preventDefault();
        const value = document.getElementById('token-input').value.trim();
        if (!value) return;
        sessionStorage.setItem(TOKEN_KEY, value);
        replies.clear();
        $forget.hidden = false;
        route();
      },
    },
      el('h1', {text: refused ? 'Another token needed' : 'Token needed'}),
      refused ? el('p', {class: 'error-text', id: 'token-refused',
                         text: 'The token given cannot read this coordinator: ' + why})
              : null,
      el('p', {text: 'This coordinator needs a read (or admin) token' +
                     (refused ? '' : ' (' + why + ')') + '. It is kept for this ' +
                     'tab only (sessionStorage) and sent as "Authorization: Bearer".'}),
      el('label', {for: 'token-input', text: 'Read token'}),
      el('input', {id: 'token-input', type: 'password', autocomplete: 'off', required: true}),
      el('button', {type: 'submit', text: 'Use token'})));
    document.getElementById('token-input').focus();
  }

  $forget.hidden = !sessionStorage.getItem(TOKEN_KEY);
  $forget.addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    replies.clear();
    $forget.hidden = true;
    route();
  });
  document.getElementById('skip-link').addEventListener('click', (ev) => {
    ev.preventDefault();  // not a route
    $main.focus();
  });

  // ------------------------------------------------------------ sweeps page

  function progressBar(counts) {
    const total = counts.total || 0;
    const bar = el('div', {
      class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': String(total),
      'aria-valuenow': String((counts.succeeded || 0) + (counts.failed || 0) + (counts.cancelled || 0)),
      'aria-label': 'runs finished',
    });
    for (const s of ['succeeded', 'failed', 'cancelled', 'running', 'leased']) {
      const n = counts[s] || 0;
      if (n && total) bar.append(el('span', {class: 'bar-' + s, style: `width:${100 * n / total}%`,
                                             title: `${n} ${s}`}));
    }
    return bar;
  }
  function countList(counts) {
    return el('span', {class: 'counts'},
              STATES.filter((s) => counts[s]).map((s) => el('span', {}, stateBadge(s), ' ', counts[s])));
  }
  function epochProgress(s) {
    const done = int64(s.epochsDone), total = int64(s.epochsTotal);
    return total ? `${done}/${total} (${fixed(100 * done / total, 0)}%)` : '-';
  }

  function sweepsPage() {
    const view = el('div');
    const archived = el('input', {type: 'checkbox', id: 'show-archived'});
    const body = el('tbody');
    const table = el('table', {id: 'sweeps-table'},
      el('caption', {text: 'Progress: runs succeeded, failed, cancelled, running (bar). ' +
                           'ETA from the epoch times observed so far.'}),
      el('thead', {}, el('tr', {},
        ['sweep', 'state', 'progress', 'runs', 'epochs', 'epoch time', 'ETA', 'submitted'].map(
            (h, i) => el('th', {scope: 'col', class: i >= 4 && i <= 6 ? 'num' : (i === 7 ? 'hide-narrow' : null), text: h})))),
      body);
    const pages = pager('sweeps', update);
    const order = el('p', {id: 'sweeps-order', class: 'muted'});
    view.append(el('h1', {text: 'Sweeps'}),
                el('div', {class: 'controls'},
                   el('label', {}, archived, ' show deleted sweeps')),
                pages.node, tableWrap(table, 'Sweeps'), order);
    $main.replaceChildren(view);
    archived.addEventListener('change', () => { pages.reset(); update(); });

    // A refresh outside the poller's rounds (a new page or filter): its error is shown.
    function update() { refresh().catch((e) => showError('Cannot update: ' + e.message)); }
    function path() {
      // Newest first (the API's newest_first): page 1 holds the newest sweeps.
      return 'sweeps' + query({include_archived: archived.checked && 'true', newest_first: 'true',
                               page_size: PAGE_SIZE, page_token: pages.token()});
    }
    let shownPath = null;

    async function refresh() {
      const want = path();
      const {data, changed} = await api(want);
      if (path() !== want) return;  // another page or filter was chosen meanwhile
      if (!changed && shownPath === want) return;
      // Only the page shown is kept for If-None-Match (a long list has many pages).
      if (shownPath && shownPath !== want) replies.delete(shownPath);
      const rows = data.sweeps || [];  // newest first
      body.replaceChildren(...rows.map((s) => el('tr', {dataset: {sweep: s.sweepId}},
        el('td', {}, el('a', {href: '#/sweep/' + encodeURIComponent(s.sweepId), text: s.name || s.sweepId}),
           el('div', {class: 'run-id muted', text: s.sweepId})),
        el('td', {}, stateBadge(s.state), s.archived ? ' (deleted)' : ''),
        el('td', {}, progressBar(s.counts || {})),
        el('td', {}, countList(s.counts || {}), el('div', {class: 'muted', text: `${(s.counts || {}).total || 0} in all`})),
        numCell(epochProgress(s)),
        numCell(s.meanEpochSeconds > 0 ? duration(s.meanEpochSeconds) : '-'),
        numCell(s.etaSeconds >= 0 ? duration(s.etaSeconds) : (s.state === 'done' ? 'done' : '?'), 'eta', s.etaSeconds),
        el('td', {class: 'hide-narrow', text: timestamp(int64(s.createdUnixMs))}))));
      if (!rows.length) body.append(el('tr', {}, el('td', {colspan: '8', text: 'No sweeps yet: resweep submit SWEEP.yaml'})));
      pages.shown(rows.length, data.nextPageToken, null);
      order.textContent = pages.page() > 1 || data.nextPageToken
          ? 'Newest first: page 1 holds the most recently submitted sweeps.' : '';
      table.dataset.page = String(pages.page());
      shownPath = want;
      dash.ready.sweeps = true;
    }
    return {name: 'sweeps', refresh};
  }

  // ------------------------------------------------------------- sweep page

  function sweepPage(id) {
    const enc = encodeURIComponent(id);
    const title = el('h1', {text: id});
    const summary = el('dl', {class: 'summary-grid', id: 'sweep-summary'});
    const results = el('div', {id: 'results'});
    const resultsNote = el('p', {class: 'muted', id: 'results-note'});
    const curves = curvesSection(enc);
    const summaryChart = summarySection();
    const runs = runsSection(enc);
    $main.replaceChildren(
      el('p', {}, el('a', {href: '#/', text: '← all sweeps'})), title, summary,
      el('section', {'aria-labelledby': 'results-h'}, el('h2', {id: 'results-h', text: 'Results'}),
         results, resultsNote),
      curves.node, summaryChart.node, runs.node);

    async function refresh(round) {
      const r = await api(`sweeps/${enc}/results`);
      if (r.changed || !dash.ready.results) {
        const s = r.data.sweep;
        title.textContent = (s.name || s.sweepId) + ' ';
        title.append(stateBadge(s.state));
        document.title = 'resweep: ' + (s.name || s.sweepId);
        const c = s.counts || {};
        const item = (k, v) => el('div', {}, el('dt', {text: k}), el('dd', {}, v));
        summary.replaceChildren(
          item('id', el('span', {class: 'run-id', text: s.sweepId})),
          item('runs', countList(c)),
          item('progress', progressBar(c)),
          item('epochs', epochProgress(s)),
          item('epoch time', s.meanEpochSeconds > 0 ? duration(s.meanEpochSeconds) : '-'),
          item('ETA', s.etaSeconds >= 0 ? duration(s.etaSeconds) : '?'));
        runs.setCounts(c);
        renderResults(results, resultsNote, r.data);
        summaryChart.update(r.data);
        dash.ready.results = true;
      }
      await runs.refresh();
      if (round % CURVE_EVERY === 0 || !dash.ready.curves) await curves.refresh();
    }
    return {name: 'sweep', refresh};
  }

  // The results table: the CLI's columns (resweep results), from GetResults.
  function renderResults(container, note, r) {
    const k = r.lastK;
    const head = ['cell', 'n', `last-${k} err % (mean ± 95% CI)`, 'std', 'vs best', 'p (Holm)',
                  'P(better) [95% CI]', 'seeds for 80%', 'final err % (mean ± std)', 'params',
                  'paper %', '2016 run %'];
    const rows = (r.cells || []).map((c, i) => {
      const l = c.lastKTestError || {}, f = c.finalTestError || {}, v = c.comparison || {};
      const tested = v.testable && !v.isBest;
      let verdict = v.isBest ? 'best' : (!v.testable ? (l.n ? '?' : '-')
                                                     : (v.indistinguishableFromBest ? '≈ best' : 'worse'));
      const meanCi = !l.n ? '-' : (l.n === 1 ? pct(l.mean) : `${pct(l.mean)} ± ${pct((l.ci95High - l.ci95Low) / 2)}`);
      const meanStd = !f.n ? '-' : (f.n === 1 ? pct(f.mean) : `${pct(f.mean)} ± ${pct(f.std)}`);
      const prob = v.hasProbability ? `${fixed(v.probabilityBetter, 2)} [${fixed(v.probabilityBetterLow, 2)}, ${fixed(v.probabilityBetterHigh, 2)}]` : '-';
      const tr = el('tr', {class: i === r.bestCell ? 'best' : null, dataset: {cell: c.cellLabel}},
        el('th', {scope: 'row', text: c.cellLabel || '(one cell)'}),
        numCell(`${c.runsSucceeded}/${c.runsTotal}`, 'n', l.n),
        numCell(meanCi, 'last_k_mean', l.n ? l.mean : null),
        numCell(l.n > 1 ? pct(l.std) : '-', 'last_k_std', l.n > 1 ? l.std : null),
        el('td', {text: verdict, dataset: {key: 'verdict', value: verdict}}),
        numCell(tested ? pValue(v.pHolm) : '-', 'p_holm', tested ? v.pHolm : null),
        numCell(prob, 'probability_better', v.hasProbability ? v.probabilityBetter : null),
        numCell(v.seedsNeeded > 0 ? String(v.seedsNeeded) : '-', 'seeds_needed', v.seedsNeeded > 0 ? v.seedsNeeded : null),
        numCell(meanStd, 'final_mean', f.n ? f.mean : null),
        numCell(c.meanParamCount > 0 ? fixed(c.meanParamCount / 1e6, 3) + 'M' : '-', 'params', c.meanParamCount > 0 ? c.meanParamCount : null),
        numCell(pct(c.paperTestError), 'paper', c.paperTestError >= 0 ? c.paperTestError : null),
        numCell(pct(c.sourceTestError), 'source', c.sourceTestError >= 0 ? c.sourceTestError : null));
      // Hidden from view, there for the test and for copying: the CI's ends.
      if (l.n > 1) Object.assign(tr.dataset, {ci95Low: l.ci95Low, ci95High: l.ci95High});
      return tr;
    });
    const table = el('table', {id: 'results-table'},
      el('thead', {}, el('tr', {}, head.map((h, i) => el('th', {scope: 'col', class: i && i !== 4 ? 'num' : null, text: h})))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', {colspan: String(head.length), text: 'No cells.'}))));
    container.replaceChildren(tableWrap(table, 'Results'));
    const alpha = r.alpha > 0 ? r.alpha : 0.05;
    note.textContent =
      `last-${k}: per run, the mean test error of its last ${k} evaluated epochs; mean ± the ` +
      `Student-t 95% confidence interval of the mean over seeds (succeeded runs only). vs best: ` +
      `"≈ best" when a Welch t-test against the best cell, Holm-adjusted across the sweep, cannot ` +
      `tell them apart at ${alpha}; "?" with fewer than two seeds. P(better): the chance a seed of ` +
      `the cell beats a seed of the best. seeds for 80%: seeds per cell a Welch test would need ` +
      `to separate the cell from the best 80% of the time. final: test error after the last epoch.`;
  }

  function colourOf(i) { return PALETTE[i % PALETTE.length]; }
  function dashOf(i) { return DASHES[Math.floor(i / PALETTE.length) % DASHES.length]; }

  // Curves: one series per cell (the mean over its seeds, with a band), seeds on demand.
  function curvesSection(enc) {
    const metricSel = el('select', {id: 'curve-metric'},
                         METRICS.map(([name, , label]) => el('option', {value: name, text: label})));
    const bandSel = el('select', {id: 'curve-band'},
                       el('option', {value: 'std', text: 'mean ± std over seeds'}),
                       el('option', {value: 'minmax', text: 'min to max over seeds'}),
                       el('option', {value: 'none', text: 'no band'}));
    const seeds = el('input', {type: 'checkbox', id: 'curve-seeds'});
    const logScale = el('input', {type: 'checkbox', id: 'curve-log'});
    const roll = el('input', {type: 'number', id: 'curve-roll', min: '1', max: '50', value: '1'});
    // Zoom without a mouse: the epochs shown, as numbers (a drag on the chart sets them too).
    const fromEpoch = el('input', {type: 'number', id: 'curve-from', min: '0', step: '1', size: '5'});
    const toEpoch = el('input', {type: 'number', id: 'curve-to', min: '1', step: '1', size: '5'});
    const reset = el('button', {type: 'button', id: 'curve-reset', text: 'Reset zoom'});
    const chartDiv = el('div', {class: 'chart', id: 'curve-chart', role: 'img',
                                'aria-label': 'Learning curves: mean over seeds per cell'});
    const legendDiv = el('div', {class: 'chart-legend', id: 'curve-legend', 'aria-live': 'off'});
    const toggles = el('fieldset', {}, el('legend', {text: 'Cells shown'}));
    const empty = el('p', {class: 'muted', id: 'curve-empty'});
    const node = el('section', {'aria-labelledby': 'curves-h'},
      el('h2', {id: 'curves-h', text: 'Curves'}),
      el('div', {class: 'controls'},
         el('label', {}, 'metric ', metricSel), el('label', {}, 'band ', bandSel),
         el('label', {}, seeds, ' each seed'), el('label', {}, logScale, ' log scale'),
         el('label', {}, 'rolling average ', roll, ' epochs'),
         el('label', {}, 'epochs ', fromEpoch), el('label', {}, ' to ', toEpoch), reset),
      el('p', {class: 'muted', text: 'Zoom with the epoch range, or drag on the chart (double-click or "Reset zoom" to undo); hover for values.'}),
      empty,
      el('div', {class: 'chart-area'},
         el('div', {}, chartDiv, legendDiv),
         el('div', {class: 'cell-toggles'}, toggles)));

    let chart = null;
    let reply = null;        // the last GetCurves reply
    const hidden = new Set();  // cell keys switched off

    // {labels, rows, cells: [{key, label, colour}], series: {label: opts}}
    function build() {
      const [metric, jsonName, axisLabel, percent] = METRICS.find((m) => m[0] === drawnMetric);
      const scale = percent ? 100 : 1;
      const log = logScale.checked;
      const cells = [], cellIndex = new Map();
      for (const run of reply.runs || []) {
        const key = run.cellKey || run.cellLabel;
        if (!cellIndex.has(key)) {
          cellIndex.set(key, cells.length);
          cells.push({key, label: run.cellLabel || '(one cell)', runs: []});
        }
        cells[cellIndex.get(key)].runs.push(run);
      }
      // Epochs present in any run, ascending.
      const epochs = new Set();
      const valueOf = (p) => {
        let v = p[jsonName];
        if (v === undefined || v === null) return null;
        if ((metric === 'test_error' || metric === 'test_loss') && v < 0) return null;  // not evaluated
        v *= scale;
        if (log && v <= 0) return null;
        return v;
      };
      const perRun = new Map();  // run id -> Map(epoch -> value)
      for (const cell of cells) {
        for (const run of cell.runs) {
          const m = new Map();
          for (const p of run.points || []) {
            const v = valueOf(p);
            if (v === null) continue;
            m.set(p.epoch, v);
            epochs.add(p.epoch);
          }
          perRun.set(run.runId, m);
        }
      }
      const xs = Array.from(epochs).sort((a, b) => a - b);
      const labels = ['epoch'];
      const series = {};
      const columns = [];  // per series: epoch -> [low, mid, high] | null
      cells.forEach((cell, ci) => {
        cell.colour = colourOf(ci);
        cell.dash = dashOf(ci);
        labels.push(cell.label);
        series[cell.label] = {color: cell.colour, strokeWidth: 2, strokePattern: cell.dash};
        columns.push((x) => {
          const vs = [];
          for (const run of cell.runs) {
            const v = perRun.get(run.runId).get(x);
            if (v !== undefined) vs.push(v);
          }
          if (!vs.length) return null;
          const mean = vs.reduce((a, b) => a + b, 0) / vs.length;
          if (bandSel.value === 'minmax') return [Math.min(...vs), mean, Math.max(...vs)];
          if (bandSel.value === 'std' && vs.length > 1) {
            const sd = Math.sqrt(vs.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (vs.length - 1));
            const low = log ? Math.max(mean - sd, mean / 10) : mean - sd;
            return [low, mean, mean + sd];
          }
          return [mean, mean, mean];
        });
      });
      if (seeds.checked) {
        cells.forEach((cell) => {
          for (const run of cell.runs) {
            const label = `${cell.label} · seed ${run.seed}`;
            labels.push(label);
            series[label] = {color: cell.colour, strokeWidth: 0.8, strokePattern: Dygraph.DOTTED_LINE,
                             fillAlpha: 0, showInRangeSelector: false};
            const m = perRun.get(run.runId);
            columns.push((x) => { const v = m.get(x); return v === undefined ? null : [v, v, v]; });
          }
        });
      }
      const rows = xs.map((x) => [x, ...columns.map((f) => f(x))]);
      const visibility = labels.slice(1).map((label, i) => {
        const cell = i < cells.length ? cells[i] : cells.find((c) => label.startsWith(c.label + ' · seed '));
        return !(cell && hidden.has(cell.key));
      });
      return {labels, rows, cells, series, visibility, axisLabel, percent};
    }

    function draw() {
      if (!reply) return;
      const b = build();
      if (!b.rows.length) {
        empty.textContent = 'No epochs reported yet.';
        chartDiv.hidden = true;
        if (chart) { chart.destroy(); chart = null; delete dash.charts.curves; }
        renderToggles(b.cells);
        dash.ready.curves = true;
        return;
      }
      empty.textContent = '';
      chartDiv.hidden = false;
      const options = {
        labels: b.labels, series: b.series, visibility: b.visibility,
        customBars: true, fillAlpha: 0.18, connectSeparatedPoints: true,
        logscale: logScale.checked, rollPeriod: Math.max(1, Math.min(50, Number(roll.value) || 1)),
        // Every string below that dygraphs shows is HTML to it: escaped (escapeHtml).
        xlabel: 'epoch', ylabel: escapeHtml(b.axisLabel), labelsDiv: legendDiv, legend: 'always',
        legendFormatter: legendHtml, labelsSeparateLines: false, hideOverlayOnMouseOut: false,
        highlightSeriesOpts: {strokeWidth: 3, highlightCircleSize: 4},
        zoomCallback: (minX, maxX) => showRange(minX, maxX),
        valueFormatter: (y) => escapeHtml(typeof y === 'number' ? (b.percent ? y.toFixed(2) : y.toPrecision(4)) : y),
        axes: {x: {
          valueFormatter: (x) => escapeHtml('epoch ' + x),
          // Epochs are whole: no ticks between them.
          ticker: (a, b, pixels, opts, g, vals) =>
            Dygraph.numericTicks(a, b, pixels, opts, g, vals).filter((t) => Number.isInteger(t.v)),
        }},
      };
      if (!chart) {
        chart = new Dygraph(chartDiv, b.rows, options);
        dash.charts.curves = chart;
      } else {
        // Keeps the zoom (dateWindow) the user chose.
        chart.updateOptions(Object.assign({file: b.rows}, options));
      }
      renderToggles(b.cells);
      dash.ready.curves = true;
    }

    function renderToggles(cells) {
      const boxes = cells.map((cell) => {
        const box = el('input', {type: 'checkbox', checked: !hidden.has(cell.key), dataset: {cell: cell.label}});
        box.addEventListener('change', () => {
          if (box.checked) hidden.delete(cell.key); else hidden.add(cell.key);
          draw();
        });
        return el('label', {}, box,
                  el('span', {class: 'swatch', style: `border-top-color:${cell.colour};border-top-style:${cell.dash ? 'dashed' : 'solid'}`}),
                  cell.label);
      });
      toggles.replaceChildren(el('legend', {text: 'Cells shown'}), ...boxes);
    }

    for (const c of [bandSel, seeds, logScale]) c.addEventListener('change', draw);
    // Another metric is another request (the API sends one metric at a time).
    metricSel.addEventListener('change', () => {
      refresh().catch((e) => showError('Cannot update: ' + e.message));
    });
    roll.addEventListener('change', () => { if (chart) chart.updateOptions({rollPeriod: Math.max(1, Math.min(50, Number(roll.value) || 1))}); });
    reset.addEventListener('click', () => {
      fromEpoch.value = toEpoch.value = '';
      if (chart) chart.resetZoom();
    });
    function showRange(minX, maxX) {
      fromEpoch.value = String(Math.round(minX));
      toEpoch.value = String(Math.round(maxX));
    }
    // A range typed in (both ends, first below last) zooms; clearing both resets.
    function zoomToTyped() {
      if (!chart) return;
      const from = fromEpoch.value === '' ? NaN : Number(fromEpoch.value);
      const to = toEpoch.value === '' ? NaN : Number(toEpoch.value);
      if (fromEpoch.value === '' && toEpoch.value === '') chart.resetZoom();
      else if (Number.isFinite(from) && Number.isFinite(to) && from < to) chart.updateOptions({dateWindow: [from, to]});
    }
    for (const input of [fromEpoch, toEpoch]) input.addEventListener('change', zoomToTyped);

    let drawnMetric = null;
    async function refresh() {
      const metric = metricSel.value;
      const r = await api(`sweeps/${enc}/curves?metric=${metric}&downsample=${CURVE_POINTS}`);
      if (metricSel.value !== metric) return;  // changed while this was in flight
      if (!r.changed && dash.ready.curves && drawnMetric === metric) return;
      reply = r.data;
      drawnMetric = metric;
      draw();
    }
    return {node, refresh};
  }

  // The summary chart: last-K test error against a grid axis, one series per value of
  // the other axes, with the 95% CI of each cell as bars, and the paper's figures.
  function summarySection() {
    const axisSel = el('select', {id: 'summary-axis'});
    const chartDiv = el('div', {class: 'chart', id: 'summary-chart', role: 'img',
                                'aria-label': 'Last-K test error against a grid axis, with 95% confidence intervals'});
    const legendDiv = el('div', {class: 'chart-legend', id: 'summary-legend'});
    const note = el('p', {class: 'muted'});
    const node = el('section', {'aria-labelledby': 'summary-h'},
      el('h2', {id: 'summary-h', text: 'Summary'}),
      el('div', {class: 'controls'}, el('label', {}, 'against ', axisSel)),
      note, chartDiv, legendDiv);
    let chart = null, last = null;

    // Vertical CI bars and a dot at the mean (dygraph plotter).
    function ciPlotter(e) {
      const ctx = e.drawingContext, area = e.plotArea;
      ctx.strokeStyle = e.color; ctx.fillStyle = e.color; ctx.lineWidth = 1.5;
      for (const p of e.points) {
        if (p.canvasy === undefined || isNaN(p.canvasy)) continue;
        if (!isNaN(p.y_top) && !isNaN(p.y_bottom)) {
          const a = area.h * p.y_top + area.y, b = area.h * p.y_bottom + area.y;
          ctx.beginPath();
          ctx.moveTo(p.canvasx, a); ctx.lineTo(p.canvasx, b);
          ctx.moveTo(p.canvasx - 5, a); ctx.lineTo(p.canvasx + 5, a);
          ctx.moveTo(p.canvasx - 5, b); ctx.lineTo(p.canvasx + 5, b);
          ctx.stroke();
        }
        ctx.beginPath(); ctx.arc(p.canvasx, p.canvasy, 3.5, 0, 2 * Math.PI); ctx.fill();
      }
      Dygraph.Plotters.linePlotter(e);
    }
    // The paper's figure: an open diamond.
    function paperPlotter(e) {
      const ctx = e.drawingContext;
      ctx.strokeStyle = e.color; ctx.lineWidth = 1.5;
      for (const p of e.points) {
        if (p.canvasy === undefined || isNaN(p.canvasy)) continue;
        ctx.beginPath();
        ctx.moveTo(p.canvasx, p.canvasy - 6); ctx.lineTo(p.canvasx + 6, p.canvasy);
        ctx.lineTo(p.canvasx, p.canvasy + 6); ctx.lineTo(p.canvasx - 6, p.canvasy);
        ctx.closePath(); ctx.stroke();
      }
    }

    function draw() {
      const r = last;
      const cells = (r.cells || []).filter((c) => c.params && Object.keys(c.params).length);
      const axes = Array.from(new Set(cells.flatMap((c) => Object.keys(c.params)))).sort();
      if (!axes.length) {
        node.hidden = true;  // no grid: the results table says it all
        return;
      }
      node.hidden = false;
      if (axisSel.options.length !== axes.length || Array.from(axisSel.options).some((o, i) => o.value !== axes[i])) {
        const keep = axisSel.value;
        axisSel.replaceChildren(...axes.map((a) => el('option', {value: a, text: a})));
        const numericAxis = axes.find((a) => cells.every((c) => c.params[a] !== undefined && !isNaN(Number(c.params[a]))));
        axisSel.value = axes.includes(keep) ? keep : (numericAxis || axes[0]);
      }
      const axis = axisSel.value;
      const values = Array.from(new Set(cells.map((c) => c.params[axis])));
      const numeric = values.every((v) => !isNaN(Number(v)));
      if (numeric) values.sort((a, b) => Number(a) - Number(b));
      const xOf = (v) => (numeric ? Number(v) : values.indexOf(v));
      const groupOf = (c) => Object.keys(c.params).filter((a) => a !== axis).sort()
                                   .map((a) => `${a}=${c.params[a]}`).join(' ') || 'last-K error';
      const groups = Array.from(new Set(cells.map(groupOf)));
      const hasPaper = cells.some((c) => c.paperTestError >= 0);
      const labels = ['x'], series = {};
      groups.forEach((g, i) => {
        labels.push(g);
        series[g] = {color: colourOf(i), plotter: ciPlotter, strokePattern: dashOf(i)};
      });
      if (hasPaper) {
        groups.forEach((g, i) => {
          const label = 'paper: ' + g;
          labels.push(label);
          series[label] = {color: colourOf(i), plotter: paperPlotter};
        });
      }
      const rows = values.map((v) => {
        const row = [xOf(v)];
        for (const g of groups) {
          const c = cells.find((c) => c.params[axis] === v && groupOf(c) === g);
          const l = c && c.lastKTestError;
          if (!l || !l.n) row.push(null);
          else if (l.n === 1) row.push([l.mean * 100, l.mean * 100, l.mean * 100]);
          else row.push([l.ci95Low * 100, l.mean * 100, l.ci95High * 100]);
        }
        if (hasPaper) {
          for (const g of groups) {
            const c = cells.find((c) => c.params[axis] === v && groupOf(c) === g);
            row.push(c && c.paperTestError >= 0 ? [c.paperTestError * 100, c.paperTestError * 100, c.paperTestError * 100] : null);
          }
        }
        return row;
      });
      note.textContent = `Last-${r.lastK} test error (%) of each cell: mean over succeeded seeds with ` +
                         `its Student-t 95% CI` + (hasPaper ? '; open diamonds: the paper\'s figure.' : '.');
      // Grid values are free text (a dataset.path is any string): every string dygraphs
      // shows is HTML to it, so each is escaped (escapeHtml), the legend's labels too.
      const xAxis = {
        valueFormatter: (x) => escapeHtml(`${axis}=${numeric ? x : values[x]}`),
        axisLabelFormatter: (x) => escapeHtml(numeric ? String(x) : (Number.isInteger(x) && values[x] !== undefined ? values[x] : '')),
        pixelsPerLabel: 40,
      };
      // A tick at each value of the axis (a grid has few), named as the grid names it.
      xAxis.ticker = () => values.map((v) => ({v: xOf(v), label: escapeHtml(v)}));
      const options = {
        labels, series, customBars: true, labelsDiv: legendDiv, legend: 'always',
        legendFormatter: legendHtml,
        xlabel: escapeHtml(axis), ylabel: escapeHtml(`last-${r.lastK} test error (%)`),
        connectSeparatedPoints: true, fillAlpha: 0, drawPoints: false, xRangePad: 20, yRangePad: 10,
        valueFormatter: (y) => escapeHtml(typeof y === 'number' ? y.toFixed(2) : y),
        axes: {x: xAxis},
      };
      if (!chart) { chart = new Dygraph(chartDiv, rows, options); dash.charts.summary = chart; }
      else chart.updateOptions(Object.assign({file: rows}, options));
      dash.ready.summary = true;
    }
    axisSel.addEventListener('change', () => { if (last) draw(); });

    return {node, update(r) { last = r; draw(); }};
  }

  // The runs table, filtered by state (ListRuns' own filter).
  function runsSection(enc) {
    const stateSel = el('select', {id: 'runs-state'}, el('option', {value: '', text: 'all states'}),
                        STATES.map((s) => el('option', {value: s, text: s})));
    const body = el('tbody');
    const pages = pager('runs', update);
    const table = el('table', {id: 'runs-table'},
      el('thead', {}, el('tr', {}, ['run', 'cell', 'seed', 'state', 'epoch', 'attempt', 'worker', 'test err %', 'last error'].map(
        (h, i) => el('th', {scope: 'col', class: [2, 4, 5, 7].includes(i) ? 'num' : null, text: h})))),
      body);
    const node = el('section', {'aria-labelledby': 'runs-h'},
      el('h2', {id: 'runs-h', text: 'Runs'}),
      el('div', {class: 'controls'}, el('label', {}, 'state ', stateSel)),
      pages.node, tableWrap(table, 'Runs'));
    // A new filter lists other runs: back to its page 1.
    stateSel.addEventListener('change', () => { pages.reset(); update(); });

    let counts = null;  // the sweep's runs per state (GetResults), for "runs X-Y of Z"
    let shownPath = null;
    // A refresh outside the poller's rounds (a new page or filter): its error is shown.
    function update() { refresh().catch((e) => showError('Cannot update: ' + e.message)); }
    function path() {
      return `sweeps/${enc}/runs` + query({state: stateSel.value, page_size: PAGE_SIZE,
                                           page_token: pages.token()});
    }

    async function refresh() {
      const filter = stateSel.value;
      const want = path();
      const r = await api(want);
      if (path() !== want) return;  // another page or filter was chosen meanwhile
      const total = counts ? (filter ? counts[filter] || 0 : counts.total || 0) : null;
      pages.shown((r.data.runs || []).length, r.data.nextPageToken, total);  // the counts may move
      if (!r.changed && shownPath === want) return;
      // Only the page shown is kept for If-None-Match (a long sweep has many pages).
      if (shownPath && shownPath !== want) replies.delete(shownPath);
      const rows = (r.data.runs || []).map((run) => el('tr', {dataset: {run: run.runId, state: run.state}},
        el('td', {class: 'run-id', text: run.runId.slice(0, 12), title: run.runId}),
        el('td', {text: run.cellLabel}),
        numCell(String(int64(run.seed))),
        el('td', {}, stateBadge(run.state)),
        numCell(`${run.epoch}/${run.epochsTotal}`, 'epoch', run.epoch),
        numCell(String(run.attempt)),
        el('td', {class: 'run-id', text: run.workerId ? run.workerId.slice(0, 12) : '-', title: run.workerId || null}),
        numCell(pct(run.lastTestError), 'test_error', run.lastTestError >= 0 ? run.lastTestError : null),
        el('td', {class: 'error-text', text: run.error || ''})));
      body.replaceChildren(...rows);
      if (!rows.length) {
        body.append(el('tr', {}, el('td', {colspan: '9', text: pages.page() > 1 ? 'No runs on this page now.'
                                                           : filter ? `No ${filter} runs.` : 'No runs.'})));
      }
      shownPath = want;
      table.dataset.filter = filter;
      table.dataset.page = String(pages.page());
      dash.ready.runs = true;
    }
    return {node, refresh, setCounts(c) { counts = c; }};
  }

  // ----------------------------------------------------------- workers page

  function workersPage() {
    const gone = el('input', {type: 'checkbox', id: 'show-gone'});
    const body = el('tbody');
    const table = el('table', {id: 'workers-table'},
      el('caption', {text: 'images/s: the training throughput of the runs a worker holds, from their latest epochs; per slot on each worker\'s own /metrics (--metrics-listen).'}),
      el('thead', {}, el('tr', {}, ['worker', 'host', 'state', 'devices (slots)', 'leases held', 'images/s', 'last seen', 'registered', 'quarantine'].map(
        (h) => el('th', {scope: 'col', text: h})))),
      body);
    $main.replaceChildren(el('h1', {text: 'Workers'}),
      el('div', {class: 'controls'}, el('label', {}, gone, ' show gone workers')),
      tableWrap(table, 'Workers'));
    gone.addEventListener('change', () => refresh());

    async function refresh() {
      const {data, changed} = await api('workers' + (gone.checked ? '?include_gone=true' : ''));
      if (!changed && dash.ready.workers) return;
      const now = Date.now();
      const rows = (data.workers || []).map((w) => {
        const until = int64(w.quarantinedUntilUnixMs);
        const quarantined = until > now;
        return el('tr', {dataset: {worker: w.workerId}},
          el('td', {}, w.name || '-', el('div', {class: 'run-id muted', text: w.workerId})),
          el('td', {text: w.host || '-'}),
          el('td', {}, stateBadge(w.state), quarantined ? [' ', stateBadge('quarantined')] : null),
          el('td', {text: `${(w.devices || []).join(', ') || '-'} (${(w.devices || []).length})`}),
          el('td', {}, String((w.runsHeld || []).length),
             (w.runsHeld || []).length ? el('div', {class: 'run-id muted', text: w.runsHeld.map((r) => r.slice(0, 12)).join(' ')}) : null),
          el('td', {class: 'images-per-sec', text: (w.runsHeld || []).length ? Math.round(w.imagesPerSec || 0).toLocaleString('en-US') : '-'}),
          el('td', {text: `${duration(w.heartbeatAgeSeconds)} ago`}),
          el('td', {text: timestamp(int64(w.registeredUnixMs))}),
          el('td', {class: 'error-text'}, quarantined
            ? `until ${timestamp(until)} (level ${w.quarantineLevel}): ${w.quarantineReason}`
            : (w.consecutiveHostFaults ? `no (${w.consecutiveHostFaults} host faults since the last success)` : 'no')));
      });
      body.replaceChildren(...rows);
      if (!rows.length) body.append(el('tr', {}, el('td', {colspan: '9', text: 'No workers registered.'})));
      dash.ready.workers = true;
    }
    return {name: 'workers', refresh};
  }

  window.addEventListener('hashchange', route);
  route();
})();
