// lmsteer playground: plain browser JavaScript, no build step. Talks to the same server's OpenAI-style API.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

const state = {
  model: '',
  steers: [], // GET /v1/steers data
  values: { a: {}, b: {} }, // value_name → number
  running: [], // AbortControllers of the generations in flight
  lensAvailable: true,
  lastTexts: { a: '', b: '' },
};

// ---------------------------------------------------------------------------------------------------------
// API

function authHeaders() {
  const key = localStorage.getItem('lmsteer-api-key');
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, opts = {}) {
  const res = await fetch(path, {
    ...opts,
    headers: {
      ...(opts.body ? { 'Content-Type': 'application/json' } : {}),
      ...authHeaders(),
      ...(opts.headers || {}),
    },
  });
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { error: { message: text } };
  }
  if (!res.ok) {
    const err = new Error(body.error?.message || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

/** POST with stream: true; calls onEvent for each parsed `data:` JSON; resolves at [DONE]. */
async function streamPost(path, body, onEvent, signal) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...authHeaders() },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!res.ok || !res.headers.get('content-type')?.startsWith('text/event-stream')) {
    const b = await res.json().catch(() => ({}));
    const err = new Error(b.error?.message || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i).trim();
      buf = buf.slice(i + 2);
      if (!block.startsWith('data: ')) continue;
      const data = block.slice(6);
      if (data === '[DONE]') return;
      const ev = JSON.parse(data);
      if (ev.error) throw new Error(ev.error.message);
      onEvent(ev);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Steer sliders

function slotList() {
  return state.steers.flatMap((s) =>
    s.slots.map((slot) => ({ steer: s.name, slot: slot.name, valueName: slot.value_name, def: slot.default })),
  );
}

function fmt(v) {
  return (Math.round(v * 10) / 10).toFixed(1);
}

function renderSliders() {
  const slots = slotList();
  $('#no-steers').hidden = slots.length > 0;
  for (const set of ['a', 'b']) {
    const box = $(`.sliders[data-set="${set}"]`);
    box.replaceChildren();
    slots.forEach((s, i) => {
      if (!(s.valueName in state.values[set])) state.values[set][s.valueName] = set === 'a' ? s.def : 0;
      const id = `slider-${set}-${i}`;
      const row = document.createElement('div');
      row.className = 'slider';
      const label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = s.valueName;
      const range = document.createElement('input');
      Object.assign(range, {
        type: 'range',
        id,
        min: '-5',
        max: '5',
        step: '0.1',
        value: String(state.values[set][s.valueName]),
      });
      range.dataset.valueName = s.valueName;
      range.setAttribute('aria-valuetext', fmt(state.values[set][s.valueName]));
      const num = document.createElement('input');
      Object.assign(num, {
        type: 'number',
        min: '-5',
        max: '5',
        step: '0.1',
        value: fmt(state.values[set][s.valueName]),
      });
      num.setAttribute('aria-label', `${s.valueName} value, setting ${set.toUpperCase()}`);
      const update = (v, from) => {
        if (!Number.isFinite(v)) return;
        v = Math.max(-5, Math.min(5, v));
        state.values[set][s.valueName] = v;
        if (from !== range) range.value = String(v);
        if (from !== num) num.value = fmt(v);
        range.setAttribute('aria-valuetext', fmt(v));
      };
      range.addEventListener('input', () => update(Number(range.value), range));
      num.addEventListener('change', () => update(Number(num.value), num));
      row.append(label, range, num);
      box.append(row);
    });
  }
  // drop values of steers no longer loaded
  const names = new Set(slots.map((s) => s.valueName));
  for (const set of ['a', 'b'])
    for (const k of Object.keys(state.values[set])) if (!names.has(k)) delete state.values[set][k];
}

function resetSet(set) {
  for (const s of slotList()) state.values[set][s.valueName] = set === 'a' ? s.def : 0;
  renderSliders();
}

// ---------------------------------------------------------------------------------------------------------
// Server info, steer management

async function refresh() {
  try {
    const [models, steers] = await Promise.all([api('/v1/models'), api('/v1/steers')]);
    state.model = models.data[0]?.id ?? '';
    state.steers = steers.data;
    $('#model-line').textContent =
      `Model: ${state.model} · context ${models.data[0]?.context_length ?? '?'} tokens · steers: ${state.steers.map((s) => s.name).join(', ') || 'none'}`;
  } catch (e) {
    $('#model-line').textContent =
      e.status === 401
        ? 'This server needs an API key: enter it under "API key" below.'
        : `Could not reach the server: ${e.message}`;
    $('#model-line').classList.add('error');
    return;
  }
  $('#model-line').classList.remove('error');
  renderSliders();
  renderSteerList();
  renderLensSelect();
}

function renderSteerList() {
  const ul = $('#steer-list');
  ul.replaceChildren();
  if (state.steers.length === 0) {
    const li = document.createElement('li');
    li.textContent = 'No steers loaded.';
    ul.append(li);
  }
  for (const s of state.steers) {
    const li = document.createElement('li');
    const slots = s.slots.map((x) => `${x.value_name} (default ${x.default})`).join(', ');
    const notes = s.slots.filter((x) => x.note).map((x) => ` ${x.value_name}: ${x.note}`);
    li.textContent = `${s.name}: rank ${s.rank}, eps ${s.eps}; ${slots}.${notes.join('')} `;
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.textContent = `Unload ${s.name}`;
    btn.addEventListener('click', async () => {
      setStatus(`Unloading ${s.name}…`);
      try {
        await api(`/v1/steers/${encodeURIComponent(s.name)}`, { method: 'DELETE' });
        setStatus(`Unloaded ${s.name}.`);
        await refresh();
      } catch (e) {
        setStatus(e.message, true);
      }
    });
    li.append(btn);
    ul.append(li);
  }
}

function renderLensSelect() {
  const sel = $('#lens-steer');
  const prev = sel.value;
  sel.replaceChildren();
  for (const s of slotList()) {
    const o = document.createElement('option');
    o.value = JSON.stringify([s.steer, s.slot]);
    o.textContent = s.valueName;
    sel.append(o);
  }
  if ([...sel.options].some((o) => o.value === prev)) sel.value = prev;
  $('#explain-now').disabled = $('#show-dims').disabled = sel.options.length === 0;
}

// ---------------------------------------------------------------------------------------------------------
// Generation

function setStatus(msg, isError = false) {
  const el = $('#status');
  el.textContent = msg;
  el.classList.toggle('error', isError);
}

function compareOn() {
  return $('#compare').checked;
}

function applyCompareLayout() {
  const on = compareOn();
  $('#steers-b').hidden = !on;
  $('#out-b').hidden = !on;
  $('.settings').classList.toggle('single', !on);
  $('#outputs').classList.toggle('single', !on);
  $('#evidence').classList.toggle('single', !on);
}

function requestBody(set) {
  const mode = $('input[name="mode"]:checked').value;
  const prompt = $('#prompt').value;
  const num = (id, def) => {
    const v = Number($(id).value);
    return $(id).value.trim() === '' || !Number.isFinite(v) ? def : v;
  };
  const body = {
    max_tokens: num('#max-tokens', 64),
    temperature: num('#temperature', 1),
    top_p: num('#top-p', 1),
    top_k: num('#top-k', 0),
    seed: Math.trunc(num('#seed', 1)),
    steer: { ...state.values[set] },
  };
  if (mode === 'chat')
    return { path: '/v1/chat/completions', body: { ...body, messages: [{ role: 'user', content: prompt }] }, echo: '' };
  return { path: '/v1/completions', body: { ...body, prompt }, echo: prompt };
}

async function runOne(set, signal) {
  const out = $(`#out-${set}`);
  const gen = $('.gen', out);
  const { path, body, echo } = requestBody(set);
  $('.prompt-echo', out).textContent = echo;
  gen.textContent = '';
  $('.meta', out).textContent = 'waiting…';
  $('.meta', out).classList.remove('error');
  $('.steer-echo', out).textContent = '';
  let finish = '';
  let usage;
  try {
    await streamPost(
      path,
      body,
      (ev) => {
        if (ev.steer) $('.steer-echo', out).textContent = describeSteer(ev.steer);
        if (ev.usage) usage = ev.usage;
        for (const c of ev.choices || []) {
          gen.textContent += c.text ?? c.delta?.content ?? '';
          if (c.finish_reason) finish = c.finish_reason;
        }
      },
      signal,
    );
    $('.meta', out).textContent =
      `finish: ${finish || '?'}${usage ? ` · ${usage.completion_tokens} tokens (prompt ${usage.prompt_tokens})` : ''}`;
    state.lastTexts[set] = echo + gen.textContent;
    return true;
  } catch (e) {
    $('.meta', out).textContent = e.name === 'AbortError' ? 'stopped' : `error: ${e.message}`;
    $('.meta', out).classList.toggle('error', e.name !== 'AbortError');
    return false;
  }
}

function describeSteer(steer) {
  const parts = Object.entries(steer).map(([k, v]) => `${k} ${v >= 0 ? '+' : ''}${fmt(v)}`);
  return parts.length ? `(${parts.join(', ')})` : '(unsteered)';
}

async function generate() {
  if (state.running.length) return;
  const sets = compareOn() ? ['a', 'b'] : ['a'];
  const ac = new AbortController();
  state.running.push(ac);
  $('#generate').disabled = true;
  $('#stop').disabled = false;
  setStatus('Generating…');
  $('#evidence').replaceChildren();
  try {
    const ok = await Promise.all(sets.map((s) => runOne(s, ac.signal)));
    setStatus(ok.every(Boolean) ? 'Done.' : 'Finished with errors (see the outputs).', !ok.every(Boolean));
    if (ok.every(Boolean) && state.lensAvailable && $('#auto-evidence').checked && $('#lens-steer').value)
      await explainOutputs();
  } finally {
    state.running = [];
    $('#generate').disabled = false;
    $('#stop').disabled = true;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Lens

function lensUnavailable() {
  state.lensAvailable = false;
  $('#lens-unavailable').hidden = false;
  $('#lens-body').hidden = true;
}

async function explainOutputs() {
  const sel = $('#lens-steer').value;
  if (!sel) return;
  const [steer, slot] = JSON.parse(sel);
  const box = $('#evidence');
  box.replaceChildren();
  const sets = compareOn() ? ['a', 'b'] : ['a'];
  for (const set of sets) {
    const text = state.lastTexts[set];
    const panel = document.createElement('div');
    panel.className = 'evidence';
    panel.setAttribute('role', 'region');
    panel.setAttribute('aria-label', `Evidence for ${steer}.${slot} in output ${set.toUpperCase()}`);
    box.append(panel);
    if (!text) {
      panel.textContent = 'Nothing to explain yet.';
      continue;
    }
    panel.textContent = 'Scoring…';
    try {
      const r = await api('/v1/explain', { method: 'POST', body: JSON.stringify({ steer, slot, text }) });
      renderEvidence(panel, r, set);
    } catch (e) {
      if (e.status === 404 && /lens endpoints/.test(e.message)) return lensUnavailable();
      panel.textContent = `Evidence failed: ${e.message}`;
      panel.classList.add('error');
    }
  }
}

function renderEvidence(panel, r, set) {
  panel.replaceChildren();
  const h = document.createElement('h3');
  h.textContent = `Output ${set.toUpperCase()}: evidence for ${r.steer}.${r.slot} · best-fitting value ${fmt(r.grid.best)}`;
  panel.append(h);
  const maxAbs = Math.max(1e-9, ...r.tokens.map((t) => Math.abs(t.evidence ?? 0)));
  const inSpan = new Set();
  for (const [a, b] of r.spans) for (let i = a; i < b; i++) inSpan.add(i);
  const body = document.createElement('div');
  r.tokens.forEach((t, i) => {
    const span = document.createElement('span');
    span.className = 'ev';
    span.textContent = t.text.replace(/^▁/, ' ');
    if (t.evidence !== null) {
      const a = Math.min(1, Math.abs(t.evidence) / maxAbs) * 0.45; // ≤ 0.45 alpha keeps dark text readable
      span.style.background = t.evidence >= 0 ? `rgba(29, 78, 216, ${a})` : `rgba(185, 28, 28, ${a})`;
      span.classList.add(t.evidence >= 0 ? 'pos' : 'neg');
      span.title = `evidence ${t.evidence.toFixed(3)}`;
    }
    if (inSpan.has(i)) {
      span.classList.add('in-span');
      span.tabIndex = 0; // spans are reachable by keyboard; their value is in the label
      span.setAttribute('aria-label', `${t.text.trim() || t.text}: evidence ${t.evidence?.toFixed(3) ?? 'none'}`);
    }
    body.append(span);
  });
  panel.append(body);
}

async function showDims() {
  const sel = $('#lens-steer').value;
  if (!sel) return;
  const [steer, slot] = JSON.parse(sel);
  const box = $('#dims');
  box.textContent = 'Computing…';
  try {
    const r = await api(`/v1/steers/${encodeURIComponent(steer)}/dims?slot=${encodeURIComponent(slot)}&top=12&dims=4`);
    box.replaceChildren();
    for (const d of r.dims) {
      const table = document.createElement('table');
      table.className = 'dims-table';
      const cap = document.createElement('caption');
      cap.textContent = `${r.steer}.${r.slot}, direction ${d.index + 1} (σ = ${d.singularValue.toFixed(3)})`;
      const head = document.createElement('tr');
      for (const t of ['Pushed up (+)', 'Pushed down (−)']) {
        const th = document.createElement('th');
        th.scope = 'col';
        th.textContent = t;
        head.append(th);
      }
      const row = document.createElement('tr');
      for (const list of [d.positive, d.negative]) {
        const td = document.createElement('td');
        td.textContent = list.map((w) => w.token.trim()).join(', ');
        row.append(td);
      }
      table.append(cap, head, row);
      box.append(table);
    }
  } catch (e) {
    if (e.status === 404 && /lens endpoints/.test(e.message)) return lensUnavailable();
    box.textContent = `Could not compute: ${e.message}`;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Wiring

document.addEventListener('DOMContentLoaded', () => {
  $('#api-key').value = localStorage.getItem('lmsteer-api-key') || '';
  $('#gen-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void generate();
  });
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
      e.preventDefault();
      void generate();
    }
  });
  $('#stop').addEventListener('click', () => state.running.forEach((ac) => ac.abort()));
  $('#new-seed').addEventListener('click', () => ($('#seed').value = String(Math.floor(Math.random() * 2 ** 31))));
  $('#compare').addEventListener('change', applyCompareLayout);
  $$('.reset').forEach((b) => b.addEventListener('click', () => resetSet(b.dataset.set)));
  $('#explain-now').addEventListener('click', () => void explainOutputs());
  $('#show-dims').addEventListener('click', () => void showDims());
  $('#save-key').addEventListener('click', () => {
    const k = $('#api-key').value.trim();
    if (k) localStorage.setItem('lmsteer-api-key', k);
    else localStorage.removeItem('lmsteer-api-key');
    void refresh();
  });
  $('#load-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const path = $('#steer-path').value.trim();
    if (!path) return;
    setStatus(`Loading ${path}… (waits for running generations to finish)`);
    try {
      const s = await api('/v1/steers', { method: 'POST', body: JSON.stringify({ path }) });
      setStatus(`Loaded ${s.name}.`);
      $('#steer-path').value = '';
      await refresh();
    } catch (err) {
      setStatus(err.message, true);
    }
  });
  applyCompareLayout();
  void refresh();
});
