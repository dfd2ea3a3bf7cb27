
(function () {
  "use strict";
  var AUTHORIZATION = "Authorization";
  var PURPOSE = "X-Purpose-Of-Use";
  var HEADERS_KEY = "graphiql:headers";  // GraphiQL's own place for the header editor's text
  var PERSIST_KEY = "graphiql:shouldPersistHeaders";
  var TABS_KEY = "graphiql:tabState";  // GraphiQL's tabs, each with its headers' text
  var ENDPOINT = window.location.href.split(/[?#]/)[0];
  var QUERY_EDITOR = ".graphiql-query-editor .CodeMirror";
  var VARIABLES_EDITOR = ".graphiql-editor-tool .graphiql-editor .CodeMirror";  // the first
  var DEFAULT_QUERY = "# Ctrl-Space completes, Ctrl-Enter runs; the book icon on the\n" +
    "# left opens the schema's documentation (for your purpose).\n#\n" +
    "# {\n#   myAccess { purpose { code name } }\n# }\n";

  var container = document.getElementById("graphiql");
  var statusLine = document.getElementById("cg-status");
  var tokenInput = document.getElementById("cg-token");
  var purposeInput = document.getElementById("cg-purpose");
  var state = {credentials: null, fetcher: null, headers: undefined, variables: undefined,
               response: undefined, generation: 0};
  var root = null;

  function status(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "cg-error" : "";
  }

  function parseObject(text) {
    if (!text || !text.trim()) return {};
    try {
      var value = JSON.parse(text);
      return value && typeof value === "object" && !Array.isArray(value) ? value : null;
    } catch (e) {
      return null;
    }
  }

  function header(headers, name) {
    for (var key in headers) {
      if (key.toLowerCase() === name.toLowerCase()) return headers[key];
    }
    return undefined;
  }

  function withoutHeader(headers, name) {
    var result = {};
    for (var key in headers) {
      if (key.toLowerCase() !== name.toLowerCase()) result[key] = headers[key];
    }
    return result;
  }

  function credentialsIn(headers) {
    var authorization = header(headers || {}, AUTHORIZATION);
    var purpose = header(headers || {}, PURPOSE);
    if (typeof authorization !== "string" || typeof purpose !== "string") return null;
    var match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    return match && purpose.trim() ? {token: match[1], purpose: purpose.trim()} : null;
  }

  function claims(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(decodeURIComponent(escape(atob(part))));
    } catch (e) {
      return {};
    }
  }

  function describe(credentials) {
    var c = claims(credentials.token);
    var who = c.client_id || c.sub || "an unknown client";
    var text = "Sending the token of " + who + " for " + credentials.purpose;
    if (typeof c.exp === "number") {
      var left = Math.round((c.exp * 1000 - Date.now()) / 60000);
      if (left <= 0) return [text + ": the token has expired, enter a new one.", true];
      text += " (it expires in " + left + " min)";
    }
    return [text + ".", false];
  }

  function persisting() {
    try { return window.localStorage.getItem(PERSIST_KEY) !== "false"; } catch (e) { return false; }
  }

  function editorText(selector) {
    var editor = document.querySelector(selector);
    return editor && editor.CodeMirror ? editor.CodeMirror.getValue() : null;
  }

  function setOrRemove(key, value) {
    if (value) window.localStorage.setItem(key, value); else window.localStorage.removeItem(key);
  }

  function store(text) {
    // Where GraphiQL looks for them when it (re)starts: its headers and its
    // active tab's, beside the editors' texts as they are now (GraphiQL saves
    // them a moment after each edit), so that it finds that tab again instead
    // of opening another.
    try {
      if (!persisting()) return;
      window.localStorage.setItem(HEADERS_KEY, text);
      var tabs = JSON.parse(window.localStorage.getItem(TABS_KEY) || "null");
      var tab = tabs && Array.isArray(tabs.tabs) ? tabs.tabs[tabs.activeTabIndex || 0] : null;
      if (!tab) return;
      tab.headers = text;
      var query = editorText(QUERY_EDITOR);
      if (query !== null) {
        var variables = editorText(VARIABLES_EDITOR) || "";
        tab.query = query;
        tab.variables = variables;
        setOrRemove("graphiql:query", query);
        setOrRemove("graphiql:variables", variables);
      }
      window.localStorage.setItem(TABS_KEY, JSON.stringify(tabs));
    } catch (e) { /* storage disabled: the headers last as long as the page */ }
  }

  function readStoredHeaders() {
    // GraphiQL keeps the headers in its active tab (and, once edited, under
    // HEADERS_KEY too: mounting it clears that key until the next edit).
    try {
      var tabs = JSON.parse(window.localStorage.getItem(TABS_KEY) || "null");
      var tab = tabs && Array.isArray(tabs.tabs) ? tabs.tabs[tabs.activeTabIndex || 0] : null;
      if (tab && credentialsIn(parseObject(tab.headers))) return tab.headers;
      return window.localStorage.getItem(HEADERS_KEY);
    } catch (e) {
      return null;
    }
  }

  // Every request the page sends, GraphiQL's schema introspection included:
  // the form's token and purpose, under the header editor's own headers.
  function makeFetcher(credentials) {
    var base = {"Content-Type": "application/json",
                "Accept": "application/graphql-response+json, application/json"};
    base[AUTHORIZATION] = "Bearer " + credentials.token;
    base[PURPOSE] = credentials.purpose;
    return function fetcher(params, options) {
      var headers = Object.assign({}, base, (options && options.headers) || {});
      var body = {};
      ["query", "documentId", "operationName", "variables", "extensions"].forEach(function (key) {
        if (params[key] !== undefined && params[key] !== null) body[key] = params[key];
      });
      return window.fetch(ENDPOINT, {method: "POST", headers: headers, body: JSON.stringify(body),
                                     credentials: "same-origin"})
        .then(function (response) {
          return response.text().then(function (text) {
            var result;
            try {
              result = JSON.parse(text);
            } catch (e) {
              result = {errors: [{message: "HTTP " + response.status + ": the gateway's answer is not JSON",
                                  extensions: {requestId: response.headers.get("X-Request-Id")}}]};
            }
            if (response.status === 401) {
              status("The gateway refused the token (" + ((result.errors || [{}])[0].message || "401") +
                     "): enter a new one above.", true);
              tokenInput.focus();
            }
            return result;
          });
        }, function (error) {
          return {errors: [{message: "the gateway cannot be reached: " + error.message}]};
        });
    };
  }

  function render() {
    if (!state.credentials) return;
    if (root === null) {
      container.textContent = "";
      root = ReactDOM.createRoot(container);
    }
    root.render(React.createElement(GraphiQL, {
      key: "credentials-" + state.generation,  // new credentials: a new GraphiQL, a new schema
      fetcher: state.fetcher,
      headers: state.headers,
      response: state.response,
      defaultQuery: DEFAULT_QUERY,
      shouldPersistHeaders: persisting(),  // GraphiQL's own setting, on unless turned off
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: "headers",
      inputValueDeprecation: true,
      onEditHeaders: function (text) {
        state.headers = text;
        var found = credentialsIn(parseObject(text));
        if (found) { tokenInput.value = found.token; purposeInput.value = found.purpose; }
      },
      onEditVariables: function (text) { state.variables = text; }
    }));
  }

  function use(credentials, editorText) {
    var headers = withoutHeader(withoutHeader(parseObject(editorText) || {}, AUTHORIZATION), PURPOSE);
    var ordered = {};
    ordered[AUTHORIZATION] = "Bearer " + credentials.token;
    ordered[PURPOSE] = credentials.purpose;
    state.credentials = credentials;
    state.headers = JSON.stringify(Object.assign(ordered, headers), null, 2);
    state.fetcher = makeFetcher(credentials);
    state.generation += 1;  // the schema is the purpose's: fetched again, the old one dropped
    state.response = undefined;
    store(state.headers);
    tokenInput.value = credentials.token;
    purposeInput.value = credentials.purpose;
    var description = describe(credentials);
    status(description[0], description[1]);
    render();
  }

  function variablesText() {
    // The Variables editor's text (GraphiQL tells of edits only; this also
    // covers what it restored from the browser's storage).
    var text = editorText(VARIABLES_EDITOR);
    return text !== null ? text : state.variables;
  }

  document.getElementById("cg-credentials").addEventListener("submit", function (event) {
    event.preventDefault();
    var token = tokenInput.value.trim().replace(/^Bearer\s+/i, "");
    var purpose = purposeInput.value;
    if (!token || !purpose) { status("Enter a token and choose a purpose.", true); return; }
    use({token: token, purpose: purpose}, state.headers !== undefined ? state.headers : readStoredHeaders());
  });

  document.getElementById("cg-forget").addEventListener("click", function () {
    // Out of the browser's storage: the header editor's text and GraphiQL's
    // tabs (each keeps its headers), then a fresh page asks again.
    try {
      window.localStorage.removeItem(HEADERS_KEY);
      var tabs = JSON.parse(window.localStorage.getItem(TABS_KEY) || "null");
      if (tabs && Array.isArray(tabs.tabs)) {
        tabs.tabs.forEach(function (tab) {
          var headers = parseObject(tab.headers);
          tab.headers = headers ? JSON.stringify(withoutHeader(headers, AUTHORIZATION), null, 2) : null;
        });
        window.localStorage.setItem(TABS_KEY, JSON.stringify(tabs));
      }
    } catch (e) { /* nothing kept */ }
    window.location.reload();
  });

  document.getElementById("cg-saved-view").addEventListener("submit", function (event) {
    event.preventDefault();
    var documentId = document.getElementById("cg-document-id").value.trim();
    if (!state.credentials || !state.credentials.token) {
      status("Enter a token and a purpose first.", true);
      return;
    }
    var variables = parseObject(variablesText());
    if (variables === null) { status("The variables are not a JSON object.", true); return; }
    var headers = parseObject(state.headers) || {};
    status("Running the saved view " + documentId.slice(0, 20) + "…", false);
    state.fetcher({documentId: documentId, variables: variables}, {headers: headers})
      .then(function (result) {
        var text = JSON.stringify(result, null, 2);
        // The result pane takes a new text only when it differs from the last one given.
        state.response = state.response === text ? text + "\n" : text;
        render();
        var failed = result.errors && !result.data;
        status(failed ? "The saved view was refused: " + result.errors[0].message
                      : "The saved view's answer is in the result pane.", failed);
      });
  });

  var stored = readStoredHeaders();
  var credentials = credentialsIn(parseObject(stored));
  if (credentials) {
    use(credentials, stored);
  } else {
    status("No token yet: enter one and choose a purpose.", false);
    tokenInput.focus();
  }
})();
