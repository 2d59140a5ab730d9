// Quartet's page: a thin client of the text protocols of docs/protocol.md,
// carried one line per WebSocket text frame. No build step, no libraries;
// everything from the network is rendered with textContent, never as markup.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

/** The WebSocket URL of a path on this page's own host. */
function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/** Waits before the next reconnect: 0.25 s, doubling, at most 5 s. */
function backoff(attempt) {
  return Math.min(5000, 250 * 2 ** attempt);
}

// ---------------------------------------------------------------- views

function showView(name) {
  for (const view of ["chat", "weather"]) {
    const shown = view === name;
    $(view).hidden = !shown;
    $(`show-${view}`).setAttribute("aria-pressed", String(shown));
  }
  if (name === "weather" && $("station").options.length === 0) {
    loadStations();
  }
}

// ---------------------------------------------------------------- chat

/** One chat user: the room, the last numbered line seen, the socket. */
const chat = {
  socket: null,
  nick: "",
  room: "",
  lastSeq: 0,
  joined: false,
  joinedOnce: false,
  leaving: false,
  attempt: 0,
  timer: null,
};

function addLine(className, parts) {
  const list = $("lines");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  const item = document.createElement("li");
  item.className = className;
  for (const [partClass, text] of parts) {
    const span = document.createElement("span");
    if (partClass) span.className = partClass;
    span.textContent = text;
    item.append(span);
  }
  list.append(item);
  if (atBottom) list.scrollTop = list.scrollHeight;
  return item;
}

function addMessage(seq, nick, text) {
  const item = addLine(nick === chat.nick ? "message mine" : "message", [
    ["nick", nick],
    ["text", text],
  ]);
  item.dataset.seq = String(seq);
}

const addEvent = (text) => addLine("event", [["", text]]);
const addError = (text) => addLine("error", [["", text]]);

function chatStatus(text) {
  $("chat-status").textContent = text;
}

function startChat(nick, room) {
  clearTimeout(chat.timer);
  if (chat.socket) {
    chat.leaving = true;
    chat.socket.close();
  }
  Object.assign(chat, {
    nick, room, lastSeq: 0, joined: false, joinedOnce: false, leaving: false, attempt: 0,
  });
  $("lines").replaceChildren();
  connectChat();
}

function connectChat() {
  chatStatus(chat.joinedOnce ? "Reconnecting…" : "Joining…");
  const socket = new WebSocket(socketUrl("/ws/chat"));
  chat.socket = socket;
  socket.addEventListener("open", () => socket.send(`NICK ${chat.nick}`));
  socket.addEventListener("message", (event) => {
    if (socket === chat.socket) onChatLine(socket, String(event.data));
  });
  socket.addEventListener("close", (event) => {
    if (socket === chat.socket) onChatClose(event);
  });
}

const NUMBERED = /^#(\d+) (\S+) ([\s\S]*)$/;
const MISSED = /^\* missed (\d+)-(\d+)$/;

function onChatLine(socket, line) {
  if (line.startsWith("OK nick ")) {
    // Rejoining asks for exactly what came after the last line we saw.
    socket.send(chat.joinedOnce
      ? `JOIN ${chat.room} SINCE ${chat.lastSeq}`
      : `JOIN ${chat.room} SEQ`);
    return;
  }
  if (line.startsWith("OK joined ")) {
    addEvent(chat.joinedOnce ? "reconnected" : line.slice(3));
    Object.assign(chat, { joined: true, joinedOnce: true, attempt: 0 });
    chatStatus(`In ${chat.room} as ${chat.nick}.`);
    $("say-form").hidden = false;
    $("say").focus();
    return;
  }
  if (line === "OK bye") {
    chat.leaving = true;
    return;
  }
  const numbered = NUMBERED.exec(line);
  if (numbered) {
    const seq = Number(numbered[1]);
    if (seq > chat.lastSeq) {
      chat.lastSeq = seq;
      addMessage(seq, numbered[2], numbered[3]);
    }
    return;
  }
  const missed = MISSED.exec(line);
  if (missed) {
    addLine("gap", [["", `missed lines ${missed[1]} to ${missed[2]}`]]);
    chat.lastSeq = Math.max(chat.lastSeq, Number(missed[2]));
    return;
  }
  if (line.startsWith("* ")) {
    addEvent(line.slice(2));
    return;
  }
  if (line.startsWith("ERR ")) {
    onChatError(socket, line.slice(4));
    return;
  }
  addEvent(line);
}

function onChatError(socket, message) {
  if (chat.joined) {
    addError(message);
    return;
  }
  if (chat.joinedOnce && message.startsWith("ALREADY_EXISTS")) {
    // Our old connection still holds the nick; the room lets it go shortly.
    socket.close();
    return;
  }
  addError(message);
  chat.leaving = true;
  socket.close();
  chatStatus("Not in a room.");
  $("nick").focus();
}

function onChatClose(event) {
  chat.joined = false;
  if (chat.leaving || !chat.joinedOnce) {
    $("say-form").hidden = true;
    chatStatus(chat.joinedOnce ? "You left the room." : "Not in a room.");
    if (event.code !== 1000 && event.reason) addError(`closed: ${event.reason}`);
    return;
  }
  if (event.reason && event.code !== 1000) addError(`closed: ${event.reason}`);
  const wait = backoff(chat.attempt++);
  chatStatus(`Connection lost; reconnecting in ${(wait / 1000).toFixed(1)} s…`);
  chat.timer = setTimeout(connectChat, wait);
}

function say(text) {
  if (!chat.joined) return;
  // A frame is one line: a pasted paragraph goes line by line.
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() !== "") chat.socket.send(line);
  }
}

function leave() {
  if (!chat.socket) return;
  chat.leaving = true;
  clearTimeout(chat.timer);
  if (chat.joined) {
    chat.socket.send("bye");
  } else {
    chat.socket.close();
  }
}

// ---------------------------------------------------------------- weather

/** The watched station, its readings so far, the socket. */
const weather = {
  socket: null,
  station: "",
  every: "5s",
  readings: [],
  stopped: true,
  attempt: 0,
  timer: null,
};

/** Readings the chart keeps. */
const KEPT_READINGS = 60;

const UNITS = { min: "°C", max: "°C", pressure: "hPa", rainfall: "mm" };

function weatherStatus(text) {
  $("weather-status").textContent = text;
}

async function loadStations() {
  try {
    const response = await fetch("/stations");
    if (!response.ok) throw new Error(await response.text());
    const stations = await response.json();
    const picker = $("station");
    picker.replaceChildren();
    for (const station of stations) {
      const option = document.createElement("option");
      option.value = station.id;
      option.textContent = station.name;
      picker.append(option);
    }
    weatherStatus("Pick a station and watch it.");
  } catch (error) {
    weatherStatus(`Cannot list the stations: ${error.message}`);
  }
}

function startWatch(station, every) {
  stopWatch();
  Object.assign(weather, { station, every, readings: [], stopped: false, attempt: 0 });
  drawChart();
  connectWeather();
}

function stopWatch() {
  clearTimeout(weather.timer);
  weather.stopped = true;
  if (weather.socket) weather.socket.close();
  weather.socket = null;
}

function connectWeather() {
  const query = new URLSearchParams({ station: weather.station, every: weather.every });
  const socket = new WebSocket(socketUrl(`/ws/weather?${query}`));
  weather.socket = socket;
  weatherStatus(`Watching ${weather.station}…`);
  socket.addEventListener("message", (event) => {
    if (socket === weather.socket) onReading(String(event.data));
  });
  socket.addEventListener("close", () => {
    if (socket !== weather.socket || weather.stopped) return;
    const wait = backoff(weather.attempt++);
    weatherStatus(`Connection lost; reconnecting in ${(wait / 1000).toFixed(1)} s…`);
    weather.timer = setTimeout(connectWeather, wait);
  });
}

/** `min=.. max=.. pressure=.. rainfall=..` as numbers (null: not recorded). */
function parseReading(line) {
  const reading = {};
  for (const pair of line.split(" ")) {
    const [key, value] = pair.split("=");
    if (key in UNITS) reading[key] = value === "-" ? null : Number(value);
  }
  return Object.keys(reading).length === 4 ? reading : null;
}

function onReading(line) {
  if (line.startsWith("ERR ")) {
    weather.stopped = true;
    weatherStatus(line.slice(4));
    return;
  }
  const reading = parseReading(line);
  if (!reading) {
    weatherStatus(line.replace(/^\* /, ""));
    return;
  }
  weather.attempt = 0;
  for (const [key, unit] of Object.entries(UNITS)) {
    const value = reading[key];
    $(`metric-${key}`).textContent = value === null ? "not recorded" : `${value.toFixed(1)} ${unit}`;
  }
  weather.readings.push(reading);
  if (weather.readings.length > KEPT_READINGS) weather.readings.shift();
  const time = new Date().toLocaleTimeString();
  weatherStatus(`${weather.station}: ${weather.readings.length} readings, last at ${time}.`);
  drawChart();
}

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Min and max temperature of every reading so far, as two lines. */
function drawChart() {
  const chart = $("chart");
  const points = weather.readings.filter((r) => r.min !== null && r.max !== null);
  chart.replaceChildren();
  chart.dataset.points = String(points.length);
  const [width, height, left, pad] = [640, 220, 52, 14];
  chart.append(svg("line", { class: "axis", x1: left, y1: pad, x2: left, y2: height - pad }));
  if (points.length === 0) {
    chart.append(svg("text", { x: left + 8, y: height / 2 }, "waiting for readings"));
    return;
  }
  let low = Math.min(...points.map((r) => r.min));
  let high = Math.max(...points.map((r) => r.max));
  if (high - low < 1) [low, high] = [low - 0.5, high + 0.5];
  const x = (i) => left + 8 + (i * (width - left - 16)) / Math.max(1, KEPT_READINGS - 1);
  const y = (v) => pad + ((high - v) * (height - 2 * pad)) / (high - low);
  chart.append(svg("text", { x: 2, y: pad + 4 }, `${high.toFixed(1)}°`));
  chart.append(svg("text", { x: 2, y: height - pad }, `${low.toFixed(1)}°`));
  for (const key of ["max", "min"]) {
    const coords = points.map((r, i) => `${x(i).toFixed(1)},${y(r[key]).toFixed(1)}`);
    chart.append(svg("polyline", { class: key, points: coords.join(" ") }));
    points.forEach((r, i) => chart.append(svg("circle", { class: key, cx: x(i), cy: y(r[key]), r: 3 })));
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("show-chat").addEventListener("click", () => showView("chat"));
  $("show-weather").addEventListener("click", () => showView("weather"));
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const nick = $("nick").value.trim();
    const room = $("room").value.trim();
    if (nick && room) startChat(nick, room);
  });
  $("say-form").addEventListener("submit", (event) => {
    event.preventDefault();
    say($("say").value);
    $("say").value = "";
  });
  $("bye").addEventListener("click", leave);
  $("watch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if ($("station").value) startWatch($("station").value, $("every").value);
  });
  drawChart();
}

wire();
