#!/usr/bin/env node
// ce-js: the CloudEvents JavaScript SDK (npm `cloudevents`) as a sender to, and a receiver of, Ripple.
//
//   node ce-js.js send --url U --mode binary|structured --id ID --type T --source S
//                      [--data TEXT] [--datacontenttype CT] [--subject S] [--time RFC3339] [--ext k=v]...
//   node ce-js.js receive --port P [--host 127.0.0.1] [--reply-type T]
//
// The same contract as tests/interop/go: send prints one JSON line {"status", "ack", "result", "event", "wire"}
// (event is what the SDK built, wire the headers and body HTTP.binary/HTTP.structured made of it); receive prints {"listening": "host:port"}, then one line per received event
// {"event": {...}, "content_type": "..."}, and with --reply-type answers each event with a reply event of that type
// (id "reply-<id>", source "/interop/js") in binary mode. --data is parsed as JSON for a JSON datacontenttype (the
// default when --data is given), as JS code hands the SDK objects; other types send the text as it is.
"use strict";

const http = require("node:http");
const { CloudEvent, HTTP } = require("cloudevents");

const ATTRIBUTES = ["specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time"];

function parseArgs(argv) {
  const options = { ext: {} };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (!flag.startsWith("--")) throw new Error(`unexpected argument ${flag}`);
    const name = flag.slice(2);
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (name === "ext") {
      const at = value.indexOf("=");
      if (at <= 0) throw new Error(`--ext wants name=value, got ${value}`);
      options.ext[value.slice(0, at)] = value.slice(at + 1);
    } else {
      options[name] = value;
    }
  }
  return options;
}

function isJsonType(contentType) {
  return /^(application|text)\/([^;\s]+\+)?json\s*(;|$)/i.test(contentType || "");
}

// The event as the SDK holds it, in the shape every interop program prints.
function describe(event) {
  const out = { extensions: {}, data: null, data_base64: null };
  for (const name of ATTRIBUTES) out[name] = event[name] === undefined ? null : String(event[name]);
  if (event.time) out.time = new Date(event.time).toISOString();
  for (const [name, value] of Object.entries(event)) {
    if (ATTRIBUTES.includes(name) || value === undefined) continue;
    if (["data", "data_base64", "datacontentencoding", "schemaurl"].includes(name)) continue;
    out.extensions[name] = String(value);
  }
  const data = event.data;
  if (data !== undefined && data !== null) {
    if (typeof data === "string") {
      out.data = data;
      out.data_base64 = Buffer.from(data, "utf8").toString("base64");
    } else if (ArrayBuffer.isView(data)) {
      // The SDK hands data_base64 over as a Uint32Array of byte values.
      const bytes = Buffer.from(Array.from(data));
      out.data_base64 = bytes.toString("base64");
    } else {
      out.data = JSON.stringify(data);
      out.data_base64 = Buffer.from(out.data, "utf8").toString("base64");
    }
  }
  return out;
}

async function send(options) {
  if (!options.url) throw new Error("send: --url is required");
  const properties = { id: options.id, type: options.type, source: options.source, ...options.ext };
  if (options.subject) properties.subject = options.subject;
  if (options.time) properties.time = options.time;
  if (options.data !== undefined) {
    properties.datacontenttype = options.datacontenttype || "application/json";
    properties.data = isJsonType(properties.datacontenttype) ? JSON.parse(options.data) : options.data;
  } else if (options.datacontenttype) {
    properties.datacontenttype = options.datacontenttype;
  }
  const event = new CloudEvent(properties);
  let message;
  if (options.mode === "structured") message = HTTP.structured(event);
  else if (!options.mode || options.mode === "binary") message = HTTP.binary(event);
  else throw new Error(`send: --mode must be binary or structured, got ${options.mode}`);

  let status = 0;
  let result = "";
  try {
    const response = await fetch(options.url, {
      method: "POST",
      headers: message.headers,
      body: message.body === undefined ? undefined : message.body,
      signal: AbortSignal.timeout(10000),
    });
    status = response.status;
    result = await response.text();
  } catch (error) {
    result = `${error.name}: ${error.message}${error.cause ? ` (${error.cause.message || error.cause})` : ""}`;
  }
  const headers = {};
  for (const [name, value] of Object.entries(message.headers)) headers[name.toLowerCase()] = String(value);
  const body = message.body === undefined || message.body === null ? "" : message.body;
  const wire = { headers, body_base64: Buffer.from(body).toString("base64") };
  const line = { status, ack: status >= 200 && status < 300, result, event: describe(event), wire };
  process.stdout.write(JSON.stringify(line) + "\n");
}

function receive(options) {
  const host = options.host || "127.0.0.1";
  const port = Number(options.port || 0);
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let event;
      try {
        // An empty body is no data (the SDK would otherwise make data of the empty string).
        event = HTTP.toEvent({ headers: request.headers, body: body.length ? body : undefined });
        if (Array.isArray(event)) throw new Error("a batch is not expected here");
      } catch (error) {
        process.stderr.write(`ce-js: not a CloudEvent: ${error.message} ${JSON.stringify(error.errors || [])}\n`);
        response.writeHead(400, { "Content-Type": "text/plain" });
        response.end(String(error.message));
        return;
      }
      const line = { event: describe(event), content_type: request.headers["content-type"] || "" };
      process.stdout.write(JSON.stringify(line) + "\n");
      if (!options["reply-type"]) {
        response.writeHead(202);
        response.end();
        return;
      }
      const reply = new CloudEvent({
        id: `reply-${event.id}`,
        type: options["reply-type"],
        source: "/interop/js",
        inreplyto: event.id,
        datacontenttype: "application/json",
        data: { replyTo: event.id, by: "js" },
      });
      const message = HTTP.binary(reply);
      response.writeHead(200, message.headers);
      response.end(message.body);
    });
  });
  server.listen(port, host, () => {
    const address = server.address();
    process.stdout.write(JSON.stringify({ listening: `${address.address}:${address.port}` }) + "\n");
  });
  const stop = () => process.exit(0);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

async function main() {
  const [command, ...rest] = process.argv.slice(2);
  const options = parseArgs(rest);
  if (command === "send") await send(options);
  else if (command === "receive") receive(options);
  else throw new Error("usage: ce-js.js send|receive [flags]");
}

main().catch((error) => {
  process.stderr.write(`ce-js: ${error.stack || error}\n`);
  process.exit(2);
});
