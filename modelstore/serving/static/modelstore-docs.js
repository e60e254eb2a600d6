// modelstore's /docs page: Swagger UI over the server's /swagger.json, plus what azmlinfsrv's
// document cannot describe. Plain browser JavaScript, shipped as is: no build step, no CDN,
// no inline script (the server writes the config into a JSON data block).
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("docs-config").textContent);
  const picker = document.getElementById("deployment");
  const key = document.getElementById("key");

  // Behind a v2 endpoint's router: the picked deployment and the key the user typed.
  function endpointHeaders() {
    const headers = {};
    if (picker.value) headers["azureml-model-deployment"] = picker.value;
    if (key.value) headers["Authorization"] = "Bearer " + key.value;
    return headers;
  }

  // "Send a file" for a @rawhttp script: its run() reads the request itself, so it may take
  // any bytes, but its /swagger.json (as azmlinfsrv writes it) describes a JSON body only.
  let sendFile = null;
  function sendFileComponent(React) {
    if (sendFile) return sendFile;
    const h = React.createElement;
    sendFile = function SendFile() {
      const [file, setFile] = React.useState(null);
      const [contentType, setContentType] = React.useState("");
      const [field, setField] = React.useState("");
      const [answer, setAnswer] = React.useState(null);
      const [busy, setBusy] = React.useState(false);
      React.useEffect(() => () => answer && answer.image && URL.revokeObjectURL(answer.image), [answer]);

      async function send() {
        setBusy(true);
        const headers = endpointHeaders();
        let body = file;
        if (field) {
          body = new FormData();
          body.append(field, new Blob([file], { type: contentType }), file.name);
        } else {
          headers["Content-Type"] = contentType || "application/octet-stream";
        }
        try {
          const response = await fetch(config.score, { method: "POST", headers, body });
          const type = response.headers.get("Content-Type") || "";
          const result = {
            status: `${response.status} ${response.statusText}`.trim(),
            headers: Array.from(response.headers.entries()).map(([n, v]) => `${n}: ${v}`),
          };
          if (type.startsWith("image/")) result.image = URL.createObjectURL(await response.blob());
          else result.text = await response.text();
          setAnswer(result);
        } catch (error) {
          setAnswer({ status: "no answer", headers: [], text: String(error) });
        } finally {
          setBusy(false);
        }
      }

      const label = (text, input) => h("label", { style: { display: "block", margin: "6px 0" } },
        h("span", { style: { display: "inline-block", width: "11em" } }, text), input);
      return h("div", { className: "modelstore-send-file" },
        h("div", { className: "opblock-section-header" },
          h("h4", { className: "opblock-title" }, "Send a file")),
        h("div", { style: { padding: "10px 20px" } },
          h("p", null, "run() is decorated with @rawhttp: it receives the request itself. Send "
            + "a file's bytes as the whole body, or name a multipart form field to send it in."),
          label("File", h("input", {
            type: "file",
            onChange: (event) => {
              const chosen = event.target.files[0] || null;
              setFile(chosen);
              if (chosen) setContentType(chosen.type || "application/octet-stream");
            },
          })),
          label("Content-Type", h("input", {
            type: "text", className: "modelstore-content-type", value: contentType,
            onChange: (event) => setContentType(event.target.value),
          })),
          label("Multipart field", h("input", {
            type: "text", className: "modelstore-field", value: field,
            placeholder: "empty: the file is the whole body",
            onChange: (event) => setField(event.target.value.trim()),
          })),
          h("button", {
            className: "btn execute modelstore-send", disabled: !file || busy, onClick: send,
          }, busy ? "Sending..." : "Send file"),
          answer && h("div", { className: "modelstore-file-answer", style: { marginTop: "10px" } },
            h("h5", null, "Status"), h("pre", { className: "modelstore-file-status" }, answer.status),
            h("h5", null, "Headers"),
            h("pre", { className: "modelstore-file-headers" }, answer.headers.join("\n")),
            h("h5", null, "Body"),
            answer.image
              ? h("img", { className: "modelstore-file-image", src: answer.image, alt: "the answer" })
              : h("pre", { className: "modelstore-file-body" }, answer.text))));
    };
    return sendFile;
  }

  function sendFilePlugin() {
    return {
      wrapComponents: {
        parameters: (Original, system) => (props) => {
          const original = system.React.createElement(Original, props);
          const [path, method] = props.pathMethod || [];
          if (path !== "/score" || method !== "post") return original;
          return system.React.createElement("div", null, original,
            system.React.createElement(sendFileComponent(system.React)));
        },
      },
    };
  }

  function build(rawhttp) {
    window.ui = SwaggerUIBundle({
      urls: config.urls,
      "urls.primaryName": config.urls[0].name,
      dom_id: "#swagger-ui",
      deepLinking: true,
      tryItOutEnabled: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      plugins: rawhttp ? [sendFilePlugin] : [],
      layout: "StandaloneLayout",
      requestInterceptor: (request) => {
        // azmlinfsrv's Swagger 2 document says https; this server is the page's own origin.
        const https = "https://" + window.location.host + "/";
        if (window.location.protocol === "http:" && request.url.startsWith(https)) {
          request.url = window.location.origin + "/" + request.url.slice(https.length);
        }
        request.headers = Object.assign(request.headers || {}, endpointHeaders());
        return request;
      },
    });
  }

  // The picked deployment's input mode; behind --auth it needs the key, so without one the
  // page shows what the document describes and offers the file control once a key is typed.
  function rebuild() {
    fetch(config.script, { headers: endpointHeaders() })
      .then((answer) => (answer.ok ? answer.json() : null))
      .catch(() => null)
      .then((script) => build(Boolean(script && script.input_mode === "raw request")));
  }

  // Only a v2 endpoint's router answers this; a single server's 404 leaves the picker hidden.
  fetch(config.endpoint)
    .then((answer) => (answer.ok ? answer.json() : null))
    .then((endpoint) => {
      if (endpoint && Array.isArray(endpoint.deployments)) {
        for (const name of endpoint.deployments) picker.add(new Option(name, name));
        document.getElementById("key-field").hidden = !endpoint.auth;
        document.getElementById("endpoint").hidden = false;
      }
    })
    .catch(() => null)
    .finally(rebuild);
  picker.addEventListener("change", rebuild);
  key.addEventListener("change", rebuild);
})();
