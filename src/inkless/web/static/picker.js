// Pickers: fill a field's <datalist> with matches from the server as the clerk types.
// Without this script the page already lists every choice, and the server resolves typed names.
// A field opts in with data-picker="office|person|fax"; in a comma-separated field only the
// entry being typed is searched, and the choices keep the entries before it.
(function () {
  "use strict";
  function lastEntry(value) {
    var parts = value.split(/[,、]/);
    return { head: parts.slice(0, -1).map(function (p) { return p.trim(); }).filter(Boolean),
             tail: parts[parts.length - 1].trim() };
  }
  function fill(list, head, matches) {
    while (list.firstChild) { list.removeChild(list.firstChild); }
    matches.forEach(function (m) {
      var option = document.createElement("option");
      option.value = head.concat([m.value]).join(", ");
      option.label = [m.label, m.kana, m.detail].filter(Boolean).join(" ");
      option.textContent = option.label;
      list.appendChild(option);
    });
  }
  function attach(input) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) { return; }
    var timer = null;
    var asked = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var entry = lastEntry(input.value);
        var ticket = ++asked;
        var url = "/directory/search?kind=" + encodeURIComponent(input.dataset.picker) +
          "&q=" + encodeURIComponent(entry.tail);
        fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(function (r) { return r.ok ? r.json() : { matches: [] }; })
          .then(function (body) {
            if (ticket !== asked) { return; }
            fill(list, entry.head, body.matches || []);
            input.dataset.pickerReady = String(body.matches ? body.matches.length : 0);
          })
          .catch(function () { /* the server-rendered list stays */ });
      }, 150);
    });
  }
  document.querySelectorAll("input[data-picker][list]").forEach(attach);

  // A procedure field with data-remembered-from="FIELD": once FIELD names a counterpart, the procedure
  // the office chose for it last time is filled in, unless the clerk has typed one.
  function remember(field) {
    var from = document.getElementById(field.dataset.rememberedFrom);
    if (!from) { return; }
    var filled = "";
    var asked = 0;
    function ask() {
      if (field.value && field.value !== filled) { return; }
      var param = from.name === "number" ? "number" : "to";
      var ticket = ++asked;
      fetch("/procedures/remembered?" + param + "=" + encodeURIComponent(from.value.trim()),
            { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { code: null }; })
        .then(function (body) {
          if (ticket !== asked || (field.value && field.value !== filled)) { return; }
          filled = body.code || "";
          field.value = filled;
          field.dataset.remembered = filled;
        })
        .catch(function () { /* the clerk chooses as before */ });
    }
    from.addEventListener("change", ask);
  }
  document.querySelectorAll("input[data-remembered-from]").forEach(remember);
})();
