// The supervisor page: the same API as any client, live through GET /discador/eventos.
// Everything the API sends is shown with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const campaigns = new Map(); // nombre → {view, estado}
const liveCalls = new Map(); // uuid → {campana, telefono, intento, estado, desde}
const refreshTimers = new Map(); // nombre → timeout of a pending estado refresh
let selected = null;
let chartTimer = null;
let chartUrls = [];

// ---- API ------------------------------------------------------------------------------------

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = sessionStorage.getItem("discador_token");
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function api(method, path, body, contentType) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType || "application/json";
    init.body = contentType ? body : JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) {
    const msg = data && data.mensaje ? data.mensaje : "error " + r.status;
    throw new Error(msg);
  }
  return data;
}

function showError(e) {
  const box = $("alerta");
  box.textContent = e && e.message ? e.message : String(e);
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 15000);
}

function clearError() { $("alerta").hidden = true; }

// ---- Campaigns ------------------------------------------------------------------------------

async function loadCampaigns() {
  try {
    const list = await api("GET", "/campanas/");
    const names = new Set(list.map((c) => c.nombre));
    for (const n of campaigns.keys()) if (!names.has(n)) campaigns.delete(n);
    for (const c of list) {
      const prev = campaigns.get(c.nombre) || {};
      campaigns.set(c.nombre, { view: c, estado: prev.estado || null });
    }
    renderCampaigns();
    renderUploadChoices();
    await Promise.all(list.map((c) => refreshEstado(c.nombre)));
  } catch (e) { showError(e); }
}

async function refreshEstado(nombre) {
  try {
    const estado = await api("GET", "/discador/estado/" + encodeURIComponent(nombre));
    const c = campaigns.get(nombre);
    if (!c) return;
    c.estado = estado;
    c.view.estado = estado.estado;
    renderRow(nombre);
    if (selected === nombre) renderDetail();
  } catch (e) { showError(e); }
}

// Counters follow the stream: a finished call of a campaign schedules one estado read (at most
// one every half second per campaign), never a poll of its numbers.
function scheduleRefresh(nombre) {
  if (!campaigns.has(nombre)) { loadCampaigns(); return; }
  if (refreshTimers.has(nombre)) return;
  refreshTimers.set(nombre, setTimeout(() => {
    refreshTimers.delete(nombre);
    refreshEstado(nombre);
  }, 500));
}

function cell(tr, campo, text) {
  let td = tr.querySelector('td[data-campo="' + campo + '"]');
  if (!td) { td = document.createElement("td"); td.dataset.campo = campo; tr.appendChild(td); }
  td.textContent = text;
  return td;
}

function fmt(n, digits) {
  if (n === undefined || n === null || Number.isNaN(n)) return "—";
  return Number(n).toFixed(digits === undefined ? 0 : digits);
}

function renderCampaigns() {
  const body = $("campanas-filas");
  const names = [...campaigns.keys()].sort();
  // Rows already drawn are kept (with what is being typed in them), only reordered.
  const rows = new Map();
  for (const tr of body.querySelectorAll("tr[data-campana]")) rows.set(tr.dataset.campana, tr);
  body.replaceChildren();
  if (names.length === 0) {
    const tr = document.createElement("tr");
    tr.className = "vacio";
    const td = document.createElement("td");
    td.colSpan = 11;
    td.textContent = "Sin campañas todavía.";
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const n of names) {
    let tr = rows.get(n);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.campana = n;
    }
    body.appendChild(tr);
    renderRow(n);
  }
}

function renderRow(nombre) {
  const c = campaigns.get(nombre);
  const tr = document.querySelector('tr[data-campana="' + CSS.escape(nombre) + '"]');
  if (!c || !tr) return;
  const e = c.estado ? c.estado.estadisticas : {};
  const estado = c.estado ? c.estado.estado : c.view.estado;
  const nameTd = cell(tr, "nombre", nombre);
  nameTd.classList.add("enlace");
  nameTd.onclick = () => select(nombre);
  const st = cell(tr, "estado", estado);
  st.className = "estado-" + String(estado).toLowerCase();
  const real = e.cps_real !== undefined ? fmt(e.cps_real, 1) : "—";
  const efectivo = e.cps_efectivo !== undefined ? fmt(e.cps_efectivo, 1) : "—";
  cell(tr, "cps", fmt(c.view.cps, 1) + " / " + real + " / " + efectivo);
  cell(tr, "en_curso", fmt(e.en_curso));
  cell(tr, "pendientes", fmt(e.pendientes));
  cell(tr, "completados", fmt(e.completados));
  cell(tr, "errores", fmt(e.errores));
  cell(tr, "humanos", fmt(e.humanos));
  cell(tr, "maquinas", fmt(e.maquinas));
  const abandono = e.tasa_abandono_30d !== undefined ? e.tasa_abandono_30d : e.tasa_abandono;
  cell(tr, "abandono", fmt(abandono, 2) + " % / " + fmt(e.tasa_abandono_maxima, 1) + " %");
  // The actions are rebuilt only when the state changes: a supervisor typing a new rate must not
  // lose it to the next event's refresh.
  let acciones = tr.querySelector('td[data-campo="acciones"]');
  if (!acciones || acciones.dataset.estado !== estado) {
    acciones = cell(tr, "acciones", "");
    acciones.dataset.estado = estado;
    acciones.replaceChildren(...actionsFor(nombre, estado, c.view.cps));
  }
}

function button(text, accion, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.dataset.accion = accion;
  b.onclick = onclick;
  return b;
}

function actionsFor(nombre, estado, cps) {
  const out = [];
  const cmd = (op) => async () => {
    clearError();
    try {
      await api("POST", "/discador/" + op, { nombre_campana: nombre });
    } catch (e) { showError(e); }
    await refreshEstado(nombre);
  };
  if (estado !== "ACTIVA" && estado !== "PAUSADA") out.push(button("Iniciar", "iniciar", cmd("iniciar")));
  if (estado === "ACTIVA") out.push(button("Pausar", "pausar", cmd("pausar")));
  if (estado === "PAUSADA") out.push(button("Reanudar", "reanudar", cmd("reanudar")));
  if (estado === "ACTIVA" || estado === "PAUSADA") out.push(button("Detener", "detener", cmd("detener")));
  const input = document.createElement("input");
  input.type = "number"; input.min = "0.1"; input.step = "0.1"; input.value = cps;
  input.className = "cps"; input.dataset.campo = "nuevo_cps";
  input.setAttribute("aria-label", "CPS de " + nombre);
  out.push(input);
  out.push(button("Cambiar CPS", "cambiar_cps", async () => {
    clearError();
    try {
      const view = await api("PATCH", "/campana/" + encodeURIComponent(nombre), { cps: Number(input.value) });
      campaigns.get(nombre).view = view;
    } catch (e) { showError(e); }
    await refreshEstado(nombre);
  }));
  return out;
}

function renderUploadChoices() {
  const sel = $("carga-campana");
  const current = sel.value;
  sel.replaceChildren();
  for (const n of [...campaigns.keys()].sort()) {
    const o = document.createElement("option");
    o.value = n; o.textContent = n;
    sel.appendChild(o);
  }
  if (campaigns.has(current)) sel.value = current;
}

// ---- Detail and charts ----------------------------------------------------------------------

function select(nombre) {
  selected = nombre;
  $("detalle").hidden = false;
  $("detalle-nombre").textContent = nombre;
  renderDetail();
  loadCharts();
}

function renderDetail() {
  const c = campaigns.get(selected);
  const motivo = c && c.estado ? c.estado.motivo : null;
  $("detalle-motivo").hidden = !motivo;
  $("detalle-motivo").textContent = motivo || "";
  const e = c && c.estado ? c.estado.estadisticas : {};
  const rows = [
    ["Escucharon el mensaje", e.escucharon], ["Transferidas", e.transferidos],
    ["Abandonadas", e.abandonados], ["Bajas", e.bajas], ["Mensajes dejados", e.mensajes_dejados],
  ];
  const max = Math.max(1, ...rows.map((r) => r[1] || 0));
  const box = $("detalle-disposiciones");
  box.replaceChildren();
  for (const [label, n] of rows) {
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("div");
    bar.className = "barra";
    bar.style.width = (100 * (n || 0) / max) + "%";
    const count = document.createElement("span");
    count.textContent = fmt(n);
    box.append(name, bar, count);
  }
}

async function chart(path, img) {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) throw new Error("gráfico: error " + r.status);
  const url = URL.createObjectURL(await r.blob());
  img.src = url;
  chartUrls.push(url);
}

async function loadCharts() {
  if (!selected) return;
  const base = "/campana/" + encodeURIComponent(selected) + "/grafico/";
  const old = chartUrls;
  chartUrls = [];
  try {
    await Promise.all([
      chart(base + "llamadas.svg", $("grafico-llamadas")),
      chart(base + "resultados.svg", $("grafico-resultados")),
    ]);
  } catch (e) { showError(e); }
  old.forEach((u) => URL.revokeObjectURL(u));
}

function scheduleCharts() {
  if (chartTimer) return;
  chartTimer = setTimeout(() => { chartTimer = null; loadCharts(); }, 3000);
}

// ---- Forms ----------------------------------------------------------------------------------

async function createCampaign(ev) {
  ev.preventDefault();
  clearError();
  const body = {
    nombre: $("nueva-nombre").value.trim(),
    cps: Number($("nueva-cps").value),
    reintentos: Number($("nueva-reintentos").value),
    amd: $("nueva-amd").value,
  };
  const opt = { hora_inicio: "nueva-hora-inicio", hora_fin: "nueva-hora-fin", zona_horaria: "nueva-zona" };
  for (const [k, id] of Object.entries(opt)) {
    const v = $(id).value.trim();
    if (v) body[k] = v;
  }
  try {
    await api("POST", "/campanas/", body);
    await loadCampaigns();
    $("carga-campana").value = body.nombre;
  } catch (e) { showError(e); }
}

async function uploadNumbers(ev) {
  ev.preventDefault();
  clearError();
  const nombre = $("carga-campana").value;
  const file = $("carga-archivo").files[0];
  const text = $("carga-texto").value;
  if (!nombre) { showError(new Error("elija una campaña")); return; }
  if (!file && !text.trim()) { showError(new Error("elija un archivo CSV o pegue los números")); return; }
  const body = file ? await file.text() : text;
  try {
    const r = await api("POST", "/campana/" + encodeURIComponent(nombre) + "/numeros", body, "text/csv");
    let msg = r.insertados + " insertados, " + r.duplicados + " duplicados, " + r.invalidos + " inválidos";
    if (r.errores && r.errores.length) {
      msg += " — " + r.errores.slice(0, 3).map((e) => "línea " + e.linea + ": " + e.motivo).join("; ");
    }
    $("carga-resultado").textContent = msg;
    await refreshEstado(nombre);
  } catch (e) { showError(e); }
}

// ---- Event stream ---------------------------------------------------------------------------

function setStreamState(connected) {
  const s = $("eventos-estado");
  s.textContent = connected ? "eventos: conectado" : "eventos: desconectado";
  s.className = connected ? "conectado" : "desconectado";
}

function logEvent(tipo, data) {
  const li = document.createElement("li");
  const hora = new Date().toLocaleTimeString("es");
  let text = hora + " " + tipo + " " + (data.campana || "");
  if (data.estado) text += " " + data.estado;
  if (data.resultado) text += " " + data.resultado;
  if (data.motivo) text += " (" + data.motivo + ")";
  li.textContent = text;
  const list = $("registro-lista");
  list.prepend(li);
  while (list.children.length > 40) list.lastChild.remove();
}

function renderLive() {
  const body = $("vivo-filas");
  body.replaceChildren();
  const calls = [...liveCalls.values()].slice(-50);
  for (const c of calls) {
    const tr = document.createElement("tr");
    for (const v of [c.campana, c.telefono, c.intento, c.estado, c.desde.toLocaleTimeString("es")]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $("vivo-cuenta").textContent = String(liveCalls.size);
}

function onEvent(tipo, data) {
  switch (tipo) {
    case "originada":
      liveCalls.set(data.uuid, { campana: data.campana, telefono: data.telefono, intento: data.intento, estado: "marcando", desde: new Date() });
      break;
    case "contestada": {
      const c = liveCalls.get(data.uuid);
      if (c) c.estado = "contestada";
      break;
    }
    case "veredicto": {
      const c = liveCalls.get(data.uuid);
      if (c) c.estado = data.resultado;
      break;
    }
    case "devuelta":
      liveCalls.delete(data.uuid);
      break;
    case "terminada":
      liveCalls.delete(data.uuid);
      scheduleRefresh(data.campana);
      if (data.campana === selected) scheduleCharts();
      logEvent(tipo, data);
      break;
    case "campana":
      logEvent(tipo, data);
      scheduleRefresh(data.campana);
      if (data.campana === selected) scheduleCharts();
      break;
    case "ritmo": {
      const c = campaigns.get(data.campana);
      if (c && c.estado) {
        Object.assign(c.estado.estadisticas, { cps_real: data.cps_real, cps_efectivo: data.cps_efectivo });
        renderRow(data.campana);
      }
      break;
    }
  }
  if (tipo !== "ritmo") renderLive();
}

// EventSource cannot send the Authorization header, so the stream is read with fetch and parsed
// here (the text/event-stream format: "event:", "data:", "id:" lines, a blank line per event).
async function followEvents() {
  for (;;) {
    try {
      const r = await fetch("/discador/eventos", { headers: headers({ Accept: "text/event-stream" }) });
      if (!r.ok) {
        let msg = "eventos: error " + r.status;
        try { msg = (await r.json()).mensaje || msg; } catch (_) { /* not JSON */ }
        throw new Error(msg);
      }
      setStreamState(true);
      await loadCampaigns(); // what happened while we were not listening
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let tipo = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) tipo = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (data) {
            try { onEvent(tipo, JSON.parse(data)); } catch (e) { console.error(e); }
          }
        }
      }
    } catch (e) {
      showError(e);
    }
    setStreamState(false);
    await new Promise((res) => setTimeout(res, 2000));
  }
}

// ---- Start ----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  const token = $("token");
  token.value = sessionStorage.getItem("discador_token") || "";
  token.addEventListener("change", () => {
    sessionStorage.setItem("discador_token", token.value);
    loadCampaigns();
  });
  $("nueva-form").addEventListener("submit", createCampaign);
  $("carga-form").addEventListener("submit", uploadNumbers);
  followEvents();
});
