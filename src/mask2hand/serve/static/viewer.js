// viewer.js: a small WebGL 1 viewer for one hand mesh and its 21 joints (no libraries).
//
// Input is in mask2hand's camera space (OpenCV: x right, y down, z forward, meters). It is shown
// in WebGL's eye space (x right, y up, z toward the viewer) by turning it 180 degrees about x,
// a rotation, so faces keep their winding; the first view is the input camera's, centred on the
// hand. Drag turns the hand, the wheel zooms, a double click resets. The drawing buffer is
// preserved so that the picture can be read back (canvas.toDataURL) after it is drawn.
"use strict";

(function (global) {
  const MESH_VERTEX = `
    attribute vec3 position;
    attribute vec3 normal;
    uniform mat4 modelView;
    uniform mat4 projection;
    varying vec3 eyeNormal;
    varying vec3 eyePosition;
    void main() {
      vec4 p = modelView * vec4(position, 1.0);
      eyePosition = p.xyz;
      // modelView is a rotation and a translation: its upper 3x3 turns normals too
      eyeNormal = mat3(modelView[0].xyz, modelView[1].xyz, modelView[2].xyz) * normal;
      gl_Position = projection * p;
    }`;

  const MESH_FRAGMENT = `
    precision mediump float;
    varying vec3 eyeNormal;
    varying vec3 eyePosition;
    uniform vec3 color;
    void main() {
      vec3 n = normalize(eyeNormal);
      // two-sided: whichever way the mesh winds (a left hand's faces are reversed), the side
      // facing the viewer is lit
      if (!gl_FrontFacing) n = -n;
      vec3 toEye = normalize(-eyePosition);
      vec3 key = normalize(vec3(-0.45, 0.65, 0.6));
      vec3 fill = normalize(vec3(0.7, -0.2, 0.45));
      float diffuse = 0.75 * max(dot(n, key), 0.0) + 0.3 * max(dot(n, fill), 0.0);
      float specular = 0.12 * pow(max(dot(n, normalize(key + toEye)), 0.0), 24.0);
      float rim = 0.12 * pow(1.0 - max(dot(n, toEye), 0.0), 3.0);
      gl_FragColor = vec4(color * (0.25 + 0.75 * diffuse) + vec3(specular + rim), 1.0);
    }`;

  const POINT_VERTEX = `
    attribute vec3 position;
    attribute vec3 pointColor;
    uniform mat4 modelView;
    uniform mat4 projection;
    uniform float pointSize;
    varying vec3 fragmentColor;
    void main() {
      fragmentColor = pointColor;
      gl_Position = projection * modelView * vec4(position, 1.0);
      gl_PointSize = pointSize;
    }`;

  const POINT_FRAGMENT = `
    precision mediump float;
    varying vec3 fragmentColor;
    uniform float roundPoint;
    void main() {
      vec2 d = gl_PointCoord - vec2(0.5);
      float r = length(d);
      if (roundPoint > 0.5 && r > 0.5) discard;
      // a dark ring keeps a joint visible over skin of any shade
      vec3 c = (roundPoint > 0.5 && r > 0.36) ? vec3(0.1) : fragmentColor;
      gl_FragColor = vec4(c, 1.0);
    }`;

  const SKIN = [0.93, 0.76, 0.65];
  const BACKGROUND = [0.955, 0.963, 0.975];
  const FIELD_OF_VIEW = 30 * Math.PI / 180;

  // ------------------------------------------------------------------ 4x4 matrices (column-major)
  function identity() {
    return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  }

  function multiply(a, b) {
    const out = new Array(16).fill(0);
    for (let col = 0; col < 4; col++) {
      for (let row = 0; row < 4; row++) {
        let sum = 0;
        for (let k = 0; k < 4; k++) sum += a[k * 4 + row] * b[col * 4 + k];
        out[col * 4 + row] = sum;
      }
    }
    return out;
  }

  function translation(x, y, z) {
    const m = identity();
    m[12] = x; m[13] = y; m[14] = z;
    return m;
  }

  function rotation(axis, angle) {
    const [x, y, z] = axis;
    const c = Math.cos(angle), s = Math.sin(angle), t = 1 - c;
    return [t * x * x + c, t * x * y + s * z, t * x * z - s * y, 0,
            t * x * y - s * z, t * y * y + c, t * y * z + s * x, 0,
            t * x * z + s * y, t * y * z - s * x, t * z * z + c, 0,
            0, 0, 0, 1];
  }

  function perspective(fovy, aspect, near, far) {
    const f = 1 / Math.tan(fovy / 2);
    return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) / (near - far), -1,
            0, 0, 2 * far * near / (near - far), 0];
  }

  // ------------------------------------------------------------------ GL helpers
  function compile(gl, type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error("shader: " + gl.getShaderInfoLog(shader));
    }
    return shader;
  }

  function program(gl, vertexSource, fragmentSource) {
    const p = gl.createProgram();
    gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, vertexSource));
    gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, fragmentSource));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error("program: " + gl.getProgramInfoLog(p));
    const uniforms = {}, attributes = {};
    for (let i = 0; i < gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS); i++) {
      const name = gl.getActiveUniform(p, i).name;
      uniforms[name] = gl.getUniformLocation(p, name);
    }
    for (let i = 0; i < gl.getProgramParameter(p, gl.ACTIVE_ATTRIBUTES); i++) {
      const name = gl.getActiveAttrib(p, i).name;
      attributes[name] = gl.getAttribLocation(p, name);
    }
    return { program: p, uniforms, attributes };
  }

  function buffer(gl, target, data) {
    const b = gl.createBuffer();
    gl.bindBuffer(target, b);
    gl.bufferData(target, data, gl.STATIC_DRAW);
    return b;
  }

  function hexColor(hex) {
    return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  }

  // camera space (OpenCV) -> eye space of the first view: (x, y, z) -> (x, -y, -z)
  function toGL(points) {
    const out = new Float32Array(points.length * 3);
    points.forEach((p, i) => { out[3 * i] = p[0]; out[3 * i + 1] = -p[1]; out[3 * i + 2] = -p[2]; });
    return out;
  }

  // area-weighted vertex normals (V*3) of a triangle mesh: the sum of the faces' cross products
  function vertexNormals(positions, faces) {
    const normals = new Float32Array(positions.length);
    for (let f = 0; f < faces.length; f += 3) {
      const a = 3 * faces[f], b = 3 * faces[f + 1], c = 3 * faces[f + 2];
      const ux = positions[b] - positions[a], uy = positions[b + 1] - positions[a + 1], uz = positions[b + 2] - positions[a + 2];
      const vx = positions[c] - positions[a], vy = positions[c + 1] - positions[a + 1], vz = positions[c + 2] - positions[a + 2];
      const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      for (const i of [a, b, c]) { normals[i] += nx; normals[i + 1] += ny; normals[i + 2] += nz; }
    }
    for (let i = 0; i < normals.length; i += 3) {
      const length = Math.hypot(normals[i], normals[i + 1], normals[i + 2]) || 1;
      normals[i] /= length; normals[i + 1] /= length; normals[i + 2] /= length;
    }
    return normals;
  }

  // ------------------------------------------------------------------ the viewer
  class HandViewer {
    // canvas: a <canvas>; throws if the browser has no WebGL
    constructor(canvas) {
      this.canvas = canvas;
      const gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: true }) ||
        canvas.getContext("experimental-webgl", { preserveDrawingBuffer: true });
      if (!gl) throw new Error("this browser has no WebGL");
      this.gl = gl;
      this.wideIndices = Boolean(gl.getExtension("OES_element_index_uint"));
      this.meshProgram = program(gl, MESH_VERTEX, MESH_FRAGMENT);
      this.pointProgram = program(gl, POINT_VERTEX, POINT_FRAGMENT);
      this.mesh = null;
      this.skeleton = null;
      this.showSkeleton = true;
      this.frames = 0;
      this.pending = false;
      this.resetView();
      this.listen();
      new ResizeObserver(() => this.requestDraw()).observe(canvas);
    }

    resetView() {
      this.turn = identity();
      this.zoom = 1;
      this.requestDraw();
    }

    // vertices: [[x, y, z]] meters, camera space; faces: [[a, b, c]]
    setMesh(vertices, faces) {
      const gl = this.gl;
      const positions = toGL(vertices);
      const flat = faces.flat();
      if (vertices.length > 65535 && !this.wideIndices) throw new Error("this browser's WebGL cannot index so many vertices");
      const indices = vertices.length > 65535 ? new Uint32Array(flat) : new Uint16Array(flat);
      let min = [Infinity, Infinity, Infinity], max = [-Infinity, -Infinity, -Infinity];
      for (let i = 0; i < positions.length; i += 3) {
        for (let k = 0; k < 3; k++) { min[k] = Math.min(min[k], positions[i + k]); max[k] = Math.max(max[k], positions[i + k]); }
      }
      const center = min.map((m, k) => (m + max[k]) / 2);
      const radius = Math.max(1e-6, 0.5 * Math.hypot(max[0] - min[0], max[1] - min[1], max[2] - min[2]));
      if (this.mesh) for (const b of this.mesh.buffers) gl.deleteBuffer(b);
      const buffers = [buffer(gl, gl.ARRAY_BUFFER, positions), buffer(gl, gl.ARRAY_BUFFER, vertexNormals(positions, indices)),
                       buffer(gl, gl.ELEMENT_ARRAY_BUFFER, indices)];
      this.mesh = { buffers, count: indices.length, indexType: indices instanceof Uint32Array ? gl.UNSIGNED_INT : gl.UNSIGNED_SHORT,
                    center, radius };
      this.requestDraw();
    }

    // joints: [[x, y, z]] (21) meters, camera space; bones: [[parent, child]]; colors: ["#rrggbb"] per joint
    setSkeleton(joints, bones, colors) {
      const gl = this.gl;
      if (this.skeleton) for (const b of this.skeleton.buffers) gl.deleteBuffer(b);
      const positions = toGL(joints);
      const jointColors = new Float32Array(colors.flatMap(hexColor));
      // each bone drawn in its child joint's (its finger's) colour
      const linePositions = new Float32Array(bones.flatMap(([a, b]) => [...positions.slice(3 * a, 3 * a + 3), ...positions.slice(3 * b, 3 * b + 3)]));
      const lineColors = new Float32Array(bones.flatMap(([, b]) => [...hexColor(colors[b]), ...hexColor(colors[b])]));
      const buffers = [buffer(gl, gl.ARRAY_BUFFER, positions), buffer(gl, gl.ARRAY_BUFFER, jointColors),
                       buffer(gl, gl.ARRAY_BUFFER, linePositions), buffer(gl, gl.ARRAY_BUFFER, lineColors)];
      this.skeleton = { buffers, joints: joints.length, lineVertices: 2 * bones.length };
      this.requestDraw();
    }

    clear() {
      this.mesh = null;
      this.skeleton = null;
      this.requestDraw();
    }

    setSkeletonVisible(visible) {
      this.showSkeleton = visible;
      this.requestDraw();
    }

    requestDraw() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }

    draw() {
      const gl = this.gl, canvas = this.canvas;
      const ratio = window.devicePixelRatio || 1;
      const width = Math.max(1, Math.round(canvas.clientWidth * ratio)), height = Math.max(1, Math.round(canvas.clientHeight * ratio));
      if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
      gl.viewport(0, 0, width, height);
      gl.clearColor(...BACKGROUND, 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      if (!this.mesh) return;
      const { center, radius } = this.mesh;
      const distance = this.zoom * radius / Math.sin(FIELD_OF_VIEW / 2) * 0.9;
      const projection = perspective(FIELD_OF_VIEW, width / height, distance * 0.05, distance + 4 * radius);
      // centre the hand, apply the user's turn, then step back along the view axis
      const modelView = multiply(translation(0, 0, -distance), multiply(this.turn, translation(-center[0], -center[1], -center[2])));
      this.drawMesh(modelView, projection);
      if (this.skeleton && this.showSkeleton) this.drawSkeleton(modelView, projection, ratio);
      this.frames += 1;
      canvas.dataset.frames = String(this.frames);
    }

    drawMesh(modelView, projection) {
      const gl = this.gl, p = this.meshProgram, [positions, normals, indices] = this.mesh.buffers;
      gl.useProgram(p.program);
      gl.enable(gl.DEPTH_TEST);
      gl.uniformMatrix4fv(p.uniforms.modelView, false, modelView);
      gl.uniformMatrix4fv(p.uniforms.projection, false, projection);
      gl.uniform3fv(p.uniforms.color, SKIN);
      this.attribute(p.attributes.position, positions, 3);
      this.attribute(p.attributes.normal, normals, 3);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, indices);
      gl.drawElements(gl.TRIANGLES, this.mesh.count, this.mesh.indexType, 0);
    }

    drawSkeleton(modelView, projection, ratio) {
      const gl = this.gl, p = this.pointProgram, [joints, jointColors, lines, lineColors] = this.skeleton.buffers;
      gl.useProgram(p.program);
      gl.disable(gl.DEPTH_TEST);  // the skeleton shows through the skin, as an x-ray
      gl.uniformMatrix4fv(p.uniforms.modelView, false, modelView);
      gl.uniformMatrix4fv(p.uniforms.projection, false, projection);
      gl.uniform1f(p.uniforms.pointSize, 1);
      gl.uniform1f(p.uniforms.roundPoint, 0);
      this.attribute(p.attributes.position, lines, 3);
      this.attribute(p.attributes.pointColor, lineColors, 3);
      gl.drawArrays(gl.LINES, 0, this.skeleton.lineVertices);
      gl.uniform1f(p.uniforms.pointSize, 8 * ratio);
      gl.uniform1f(p.uniforms.roundPoint, 1);
      this.attribute(p.attributes.position, joints, 3);
      this.attribute(p.attributes.pointColor, jointColors, 3);
      gl.drawArrays(gl.POINTS, 0, this.skeleton.joints);
    }

    attribute(location, b, size) {
      const gl = this.gl;
      gl.bindBuffer(gl.ARRAY_BUFFER, b);
      gl.enableVertexAttribArray(location);
      gl.vertexAttribPointer(location, size, gl.FLOAT, false, 0, 0);
    }

    // drag: turn about the screen's axes (horizontal motion about the vertical axis and so on);
    // wheel: zoom; double click: the first view again
    listen() {
      const canvas = this.canvas;
      let last = null;
      canvas.addEventListener("pointerdown", (e) => { last = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
      canvas.addEventListener("pointermove", (e) => {
        if (!last) return;
        const dx = e.clientX - last[0], dy = e.clientY - last[1];
        last = [e.clientX, e.clientY];
        const speed = 2 * Math.PI / Math.max(200, canvas.clientWidth);
        this.turn = multiply(rotation([0, 1, 0], dx * speed), multiply(rotation([1, 0, 0], dy * speed), this.turn));
        this.requestDraw();
      });
      const stop = () => { last = null; };
      canvas.addEventListener("pointerup", stop);
      canvas.addEventListener("pointercancel", stop);
      canvas.addEventListener("wheel", (e) => {
        e.preventDefault();
        this.zoom = Math.min(8, Math.max(0.2, this.zoom * Math.exp(e.deltaY * 0.0015)));
        this.requestDraw();
      }, { passive: false });
      canvas.addEventListener("dblclick", () => this.resetView());
    }
  }

  global.HandViewer = HandViewer;
})(window);
