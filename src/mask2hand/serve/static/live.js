// live.js: the live page of mask2hand serve. The camera (getUserMedia) -> a silhouette made here
// (brightness threshold, or difference from a captured empty background) -> WS /api/live -> the
// smoothed 3-D hand (viewer.js), with the answered frame rate and the latency.
//
// At most IN_FLIGHT frames are unanswered at a time: the next is sent when an answer arrives, so
// the browser makes a frame while the server answers the one before, and a slow server lowers
// the frame rate instead of piling frames up. A frame message is a 12-byte
// header (width, height as little-endian uint16; the time it was taken in seconds, float64) and
// one byte per pixel, 0 background, 255 hand (mask2hand.serve.live).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SIDE = 224;                 // the silhouette's size in pixels, the shipped model's input
  const HEADER_BYTES = 12;
  const LATENCY_WINDOW = 60;        // answers the median latency is taken over
  const RATE_WINDOW_MS = 2000;      // the answered frame rate counts the answers of the last 2 s
  const IN_FLIGHT = 1;              // frames sent and not yet answered, at most (2 raised the rate 10% and doubled the latency on 2 busy cores)

  const video = $("camera");
  const maskCanvas = $("mask");
  const maskContext = maskCanvas.getContext("2d", { willReadFrequently: true });
  const grab = document.createElement("canvas");
  grab.width = grab.height = SIDE;
  const grabContext = grab.getContext("2d", { willReadFrequently: true });

  const state = {
    camera: null,         // the MediaStream
    socket: null,
    hello: null,          // the server's first message: faces, bones, joint colours
    background: null,     // Uint8Array (SIDE*SIDE) grey levels of the empty scene
    sentAt: [],           // when each unanswered frame was taken (ms), oldest first: answers come in order
    latencies: [],
    answeredAt: [],
  };
  // what the page measured, for a reader of the page (the browser test, benchmarks/live.py)
  window.liveStats = { answers: 0, errors: 0, latencies: [], fps: 0, serverSeconds: [] };

  let viewer = null;
  try {
    viewer = new HandViewer($("viewer"));
  } catch (error) {
    $("viewer-placeholder").textContent = `No 3-D view: ${error.message}.`;
  }

  function showError(message) {
    $("error").hidden = !message;
    $("error").textContent = message || "";
  }

  // ------------------------------------------------------------------ the silhouette
  // the video's central square, SIDE x SIDE, as grey levels (0..255)
  function greyFrame() {
    const w = video.videoWidth, h = video.videoHeight, side = Math.min(w, h);
    grabContext.drawImage(video, (w - side) / 2, (h - side) / 2, side, side, 0, 0, SIDE, SIDE);
    const rgba = grabContext.getImageData(0, 0, SIDE, SIDE).data;
    const grey = new Uint8Array(SIDE * SIDE);
    for (let i = 0; i < grey.length; i++) {
      grey[i] = (77 * rgba[4 * i] + 150 * rgba[4 * i + 1] + 29 * rgba[4 * i + 2]) >> 8;
    }
    return grey;
  }

  function silhouette(grey) {
    const threshold = Number($("threshold").value), mode = $("mode").value;
    const mask = new Uint8Array(grey.length);
    for (let i = 0; i < grey.length; i++) {
      const hand = mode === "bright" ? grey[i] > threshold
        : mode === "dark" ? grey[i] < threshold
        : Math.abs(grey[i] - state.background[i]) > threshold;
      mask[i] = hand ? 255 : 0;
    }
    return mask;
  }

  function showMask(mask) {
    const image = maskContext.createImageData(SIDE, SIDE);
    for (let i = 0; i < mask.length; i++) {
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = mask[i];
      image.data[4 * i + 3] = 255;
    }
    maskContext.putImageData(image, 0, 0);
  }

  function frameMessage(mask, takenSeconds) {
    const buffer = new ArrayBuffer(HEADER_BYTES + mask.length);
    const header = new DataView(buffer);
    header.setUint16(0, SIDE, true);
    header.setUint16(2, SIDE, true);
    header.setFloat64(4, takenSeconds, true);
    new Uint8Array(buffer, HEADER_BYTES).set(mask);
    return buffer;
  }

  // ------------------------------------------------------------------ the socket
  function sendFrame() {
    const socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN || !state.camera || !video.videoWidth) return;
    if (state.sentAt.length >= IN_FLIGHT) return;
    if ($("mode").value === "background" && !state.background) {
      showError("capture the background first (the scene without the hand), or choose a brightness mode");
      setTimeout(sendFrame, 250);
      return;
    }
    const taken = performance.now();
    const mask = silhouette(greyFrame());
    showMask(mask);
    state.sentAt.push(taken);
    socket.send(frameMessage(mask, taken / 1000));
  }

  function sendSettings() {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return;
    state.socket.send(JSON.stringify({ side: $("left").checked ? "left" : "right", smoothing: $("smoothing").checked }));
  }

  function median(values) {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
  }

  function recordAnswer(now) {
    const latency = now - state.sentAt.shift();
    state.latencies.push(latency);
    if (state.latencies.length > LATENCY_WINDOW) state.latencies.shift();
    state.answeredAt.push(now);
    while (state.answeredAt.length && state.answeredAt[0] < now - RATE_WINDOW_MS) state.answeredAt.shift();
    const span = Math.max(1, Math.min(RATE_WINDOW_MS, now - state.answeredAt[0]));
    const fps = state.answeredAt.length > 1 ? 1000 * (state.answeredAt.length - 1) / span : 0;
    window.liveStats.fps = fps;
    window.liveStats.latencies.push(latency);
    $("fps").textContent = `${fps.toFixed(1)} fps`;
    $("latency").textContent = `${median(state.latencies).toFixed(0)} ms`;
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    if (message.type === "hello") {
      state.hello = message;
      sendSettings();
      for (let i = 0; i < IN_FLIGHT; i++) sendFrame();
    } else if (message.type === "answer") {
      recordAnswer(performance.now());
      window.liveStats.answers += 1;
      window.liveStats.serverSeconds.push(message.seconds);
      showError(null);
      if (viewer) {
        viewer.setMesh(message.vertices, state.hello.faces);
        viewer.setSkeleton(message.joints, state.hello.bones, state.hello.joint_colors);
        $("viewer-placeholder").hidden = true;
      }
      $("server-time").textContent = `${(1000 * message.seconds).toFixed(0)} ms`;
      $("iou").textContent = message.iou.toFixed(3);
      $("frames").textContent = String(window.liveStats.answers);
      sendFrame();
    } else if (message.type === "error") {
      state.sentAt.shift();
      window.liveStats.errors += 1;
      showError(message.error);
      setTimeout(sendFrame, 100);  // an empty silhouette stays empty for a while: do not spin
    }
  }

  function openSocket() {
    const socket = new WebSocket(`ws://${location.host}/api/live`);
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", (event) => {
      if (state.socket === socket && state.camera) {
        showError(`the server closed the live connection${event.reason ? ": " + event.reason : ""}; press Start again`);
        stop();
      }
    });
    socket.addEventListener("error", () => showError("the live connection failed; is mask2hand serve still running?"));
    state.socket = socket;
  }

  // ------------------------------------------------------------------ start and stop
  async function start() {
    showError(null);
    $("start").disabled = true;
    try {
      state.camera = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (error) {
      $("start").disabled = false;
      showError(`no camera: ${error.message}`);
      return;
    }
    video.srcObject = state.camera;
    await video.play();
    $("stop").disabled = false;
    $("capture-background").disabled = false;
    openSocket();
  }

  function stop() {
    const socket = state.socket;
    state.socket = null;
    state.sentAt = [];
    if (socket) socket.close();
    if (state.camera) for (const track of state.camera.getTracks()) track.stop();
    state.camera = null;
    video.srcObject = null;
    $("start").disabled = false;
    $("stop").disabled = true;
    $("capture-background").disabled = true;
  }

  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
  $("capture-background").addEventListener("click", () => {
    state.background = greyFrame();
    $("mode").value = "background";
    $("threshold").value = "30";
    $("threshold").dispatchEvent(new Event("input"));
  });
  $("threshold").addEventListener("input", () => { $("threshold-value").textContent = $("threshold").value; });
  $("left").addEventListener("change", sendSettings);
  $("smoothing").addEventListener("change", sendSettings);
})();
