// app.js: the page of mask2hand serve. Draw (or upload) a silhouette, send it to POST /api/predict,
// show the answer: the overlay image, the 3-D hand (viewer.js), IoU, messages, downloads, the JSON.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const canvas = $("draw");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const UNDO_DEPTH = 30;

  const state = {
    tool: "brush",
    upload: null,       // a File sent as it is, until the user draws over its preview
    undo: [],
    busy: false,
    answer: null,
  };

  // ------------------------------------------------------------------ drawing
  function clearCanvas() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }

  function pushUndo() {
    state.undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
    if (state.undo.length > UNDO_DEPTH) state.undo.shift();
    $("undo").disabled = false;
  }

  function undo() {
    const image = state.undo.pop();
    if (image) { ctx.putImageData(image, 0, 0); useDrawing(); }
    $("undo").disabled = state.undo.length === 0;
  }

  // from now on the canvas is the mask (an uploaded file's preview becomes the drawing's start)
  function useDrawing() {
    state.upload = null;
    $("canvas-note").hidden = true;
    $("source-line").textContent = `Your drawing, ${canvas.width} × ${canvas.height} px`;
    $("source-line").title = "";
  }

  function canvasPoint(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  }

  function brushSize() {
    return Number($("brush-size").value);
  }

  function stroke(from, to) {
    ctx.strokeStyle = ctx.fillStyle = state.tool === "brush" ? "#fff" : "#000";
    ctx.lineWidth = brushSize();
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    if (from[0] === to[0] && from[1] === to[1]) {
      ctx.arc(to[0], to[1], brushSize() / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.moveTo(from[0], from[1]);
      ctx.lineTo(to[0], to[1]);
      ctx.stroke();
    }
  }

  let lastPoint = null;
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    pushUndo();
    useDrawing();
    lastPoint = canvasPoint(event);
    stroke(lastPoint, lastPoint);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!lastPoint) return;
    const point = canvasPoint(event);
    stroke(lastPoint, point);
    lastPoint = point;
  });
  const endStroke = () => { lastPoint = null; };
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  // the canvas as a 0/1 mask (hand where the red channel is above mid-grey), and back
  function readMask() {
    const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const mask = new Uint8Array(canvas.width * canvas.height);
    for (let i = 0; i < mask.length; i++) mask[i] = image.data[4 * i] > 127 ? 1 : 0;
    return mask;
  }

  function writeMask(mask) {
    const image = ctx.createImageData(canvas.width, canvas.height);
    for (let i = 0; i < mask.length; i++) {
      const v = mask[i] ? 255 : 0;
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  // background not reachable from the border (4-connected) is a hole: make it hand
  function fillHoles() {
    pushUndo();
    const w = canvas.width, h = canvas.height, mask = readMask();
    const outside = new Uint8Array(w * h), queue = [];
    const visit = (i) => { if (!mask[i] && !outside[i]) { outside[i] = 1; queue.push(i); } };
    for (let x = 0; x < w; x++) { visit(x); visit((h - 1) * w + x); }
    for (let y = 0; y < h; y++) { visit(y * w); visit(y * w + w - 1); }
    while (queue.length) {
      const i = queue.pop(), x = i % w;
      if (x > 0) visit(i - 1);
      if (x < w - 1) visit(i + 1);
      if (i >= w) visit(i - w);
      if (i < w * (h - 1)) visit(i + w);
    }
    writeMask(mask.map((v, i) => (v || !outside[i] ? 1 : 0)));
    useDrawing();
  }

  function invert() {
    pushUndo();
    writeMask(readMask().map((v) => 1 - v));
    useDrawing();
  }

  function setTool(tool) {
    state.tool = tool;
    for (const name of ["brush", "eraser"]) {
      const button = $(`tool-${name}`);
      button.classList.toggle("active", name === tool);
      button.setAttribute("aria-pressed", String(name === tool));
    }
  }

  // ------------------------------------------------------------------ uploads
  function isArrayFile(file) {
    return file.name.toLowerCase().endsWith(".npy");
  }

  async function showUpload(file) {
    pushUndo();
    clearCanvas();
    state.upload = file;
    const note = $("canvas-note");
    let size = "";
    if (isArrayFile(file)) {
      note.textContent = `${file.name}: a .npy array, sent as it is (no preview). Draw to replace it.`;
      note.hidden = false;
    } else {
      try {
        const bitmap = await createImageBitmap(file);
        const scale = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
        const w = bitmap.width * scale, h = bitmap.height * scale;
        ctx.drawImage(bitmap, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
        size = `, ${bitmap.width} × ${bitmap.height} px`;
        note.hidden = true;
      } catch (error) {
        note.textContent = `${file.name}: this browser cannot show it; it is sent as it is and the server says whether it can read it.`;
        note.hidden = false;
      }
    }
    $("source-line").textContent = `${file.name}${size}, sent as uploaded`;
    $("source-line").title = "drawing on the canvas switches back to your drawing";
  }

  // ------------------------------------------------------------------ predicting
  function maskBlob() {
    if (state.upload) return Promise.resolve([state.upload, state.upload.name]);
    return new Promise((resolve) => canvas.toBlob((blob) => resolve([blob, "drawing.png"]), "image/png"));
  }

  async function predict() {
    if (state.busy) return;
    setBusy(true);
    showError(null);
    try {
      const [blob, name] = await maskBlob();
      const form = new FormData();
      form.append("mask", blob, name);
      const focal = $("focal").value.trim(), K = $("K").value.trim();
      if (focal) form.append("focal", focal);
      if (K) form.append("K", K);
      form.append("fit", $("fit").checked ? "true" : "false");
      form.append("hypotheses", $("hypotheses").value.trim() || "0");
      form.append("side", $("side").value);
      const response = await fetch("/api/predict", { method: "POST", body: form });
      let data;
      try {
        data = await response.json();
      } catch (error) {
        data = { error: `the server answered HTTP ${response.status} without JSON` };
      }
      if (!response.ok) showError(data.error || `HTTP ${response.status}`);
      else showAnswer(data);
    } catch (error) {
      showError(`the server did not answer (${error.message}); is mask2hand serve still running?`);
    } finally {
      setBusy(false);
    }
  }

  function setBusy(busy) {
    state.busy = busy;
    const button = $("predict");
    button.disabled = busy;
    button.classList.toggle("busy", busy);
    button.textContent = busy ? "Predicting…" : "Predict 3D hand";
    document.body.dataset.busy = String(busy);
  }

  function showError(message) {
    const box = $("error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  // ------------------------------------------------------------------ the answer
  let viewer = null;
  try {
    viewer = new HandViewer($("viewer"));
  } catch (error) {
    $("viewer-placeholder").textContent = `No 3-D view: ${error.message}. The downloads still work.`;
  }

  function stat(label, value) {
    const item = document.createElement("div");
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = label;
    dd.textContent = value;
    item.append(dt, dd);
    return item;
  }

  function message(kind, text) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = text;
    return li;
  }

  function showAnswer(answer) {
    state.answer = answer;
    const p = answer.prediction;
    $("overlay").src = answer.overlay;
    $("overlay").hidden = false;
    $("overlay-placeholder").hidden = true;
    showMesh(answer.mesh.vertices);
    if (viewer) {
      viewer.setSkeleton(p.joints, answer.skeleton.bones, answer.skeleton.joint_colors);
      $("viewer-placeholder").hidden = true;
    }

    const stats = $("stats");
    stats.replaceChildren(stat("IoU", p.iou.toFixed(3)));
    if (p.iou_before_fit !== undefined) stats.append(stat("IoU before fit", p.iou_before_fit.toFixed(3)));
    if (p.side_margin !== undefined) {
      stats.append(stat("hand", `${p.side}${p.side_ambiguous ? " (ambiguous)" : ""}, margin ${p.side_margin.toFixed(3)}`));
    }
    stats.append(stat("joints", String(p.joints.length)), stat("vertices", String(answer.mesh.vertices.length)),
                 stat("wrist depth", `${(p.joints[0][2] * 100).toFixed(1)} cm`), stat("time", `${answer.seconds.toFixed(2)} s`));

    const messages = $("messages");
    messages.replaceChildren(...p.warnings.map((w) => message("warning", w)), ...p.notes.map((n) => message("note", n)));

    const choice = $("hypothesis-choice"), select = $("hypothesis-select");
    select.replaceChildren(new Option("the answer", "-1"));
    (p.hypotheses || []).forEach((h, k) => {
      select.append(new Option(`hypothesis ${k + 1}: ${h.start}, IoU ${h.iou.toFixed(3)}, score ${h.score.toFixed(3)}`, String(k)));
    });
    choice.hidden = !(p.hypotheses && p.hypotheses.length);

    const downloads = $("downloads");
    downloads.replaceChildren(...Object.entries(answer.downloads).map(([name, url]) => {
      const link = document.createElement("a");
      link.href = url;
      link.download = name;
      const kind = name.endsWith(".json") ? "JSON" : name.endsWith(".ply") ? "PLY" : name.endsWith(".glb") ? "GLB" : "OBJ";
      link.textContent = name.includes("_hyp") ? `${kind} ${name.match(/_hyp(\d+)/)[0].slice(1)}` : kind;
      link.title = `download ${name}`;
      return link;
    }));
    $("json").textContent = formatJSON(p);
    $("summary").hidden = false;
  }

  function showMesh(vertices) {
    if (viewer) viewer.setMesh(vertices, state.answer.mesh.faces);
  }

  // indented JSON with lists of numbers on one line, the layout of the files mask2hand writes
  function formatJSON(value, indent = "") {
    const inner = indent + "  ";
    if (Array.isArray(value)) {
      if (value.every((v) => v === null || typeof v !== "object")) return "[" + value.map((v) => JSON.stringify(v)).join(", ") + "]";
      return "[\n" + value.map((v) => inner + formatJSON(v, inner)).join(",\n") + "\n" + indent + "]";
    }
    if (value && typeof value === "object") {
      const entries = Object.entries(value);
      if (!entries.length) return "{}";
      return "{\n" + entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJSON(v, inner)}`).join(",\n") + "\n" + indent + "}";
    }
    return JSON.stringify(value);
  }

  // ------------------------------------------------------------------ wiring
  $("tool-brush").addEventListener("click", () => setTool("brush"));
  $("tool-eraser").addEventListener("click", () => setTool("eraser"));
  $("brush-size").addEventListener("input", () => { $("brush-size-value").textContent = $("brush-size").value; });
  $("fill-holes").addEventListener("click", fillHoles);
  $("invert").addEventListener("click", invert);
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", () => { pushUndo(); clearCanvas(); useDrawing(); });
  $("upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) showUpload(file);
    event.target.value = "";  // choosing the same file again still loads it
  });
  $("predict").addEventListener("click", predict);
  $("show-skeleton").addEventListener("change", (event) => { if (viewer) viewer.setSkeletonVisible(event.target.checked); });
  $("hypothesis-select").addEventListener("change", (event) => {
    const k = Number(event.target.value);
    showMesh(k < 0 ? state.answer.mesh.vertices : state.answer.mesh.hypotheses[k]);
    if (viewer) {
      const joints = k < 0 ? state.answer.prediction.joints : state.answer.prediction.hypotheses[k].joints;
      viewer.setSkeleton(joints, state.answer.skeleton.bones, state.answer.skeleton.joint_colors);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select")) return;
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") predict();
    else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") { event.preventDefault(); undo(); }
    else if (event.key === "b") setTool("brush");
    else if (event.key === "e") setTool("eraser");
  });

  fetch("/api/health").then((r) => r.json()).then((health) => {
    $("model-line").textContent = `model ${health.model.weights} · ${health.hand.name} hand · ${health.device} · mask2hand ${health.version}`;
  }).catch(() => { $("model-line").textContent = "the server does not answer"; });

  clearCanvas();
  useDrawing();
})();
