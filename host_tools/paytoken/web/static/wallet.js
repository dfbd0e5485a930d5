// The wallet's online code: count down, and ask the issuer for a fresh one before it expires
// (a few seconds ahead, so a code on the screen is always one the till can still use).
"use strict";
var PaytokenWallet = (function () {
  var box = document.getElementById("qr");
  var digits = document.getElementById("digits");
  var expiry = document.getElementById("expiry");
  var meter = document.getElementById("meter");
  if (!box || !expiry) return {};
  var ttl = parseInt(expiry.dataset.ttl, 10) || 60;
  var deadline = Date.now() + (parseInt(expiry.dataset.left, 10) || 0) * 1000;
  var busy = false;

  function ahead() { return Math.max(3, Math.min(10, Math.floor(ttl / 4))) * 1000; }

  function refresh() {
    if (busy) return;
    busy = true;
    var body = new URLSearchParams({ csrf: expiry.dataset.csrf });
    fetch("/wallet/code", { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        if (res[0] !== 200) { expiry.textContent = "No new code: " + (res[1].error || res[0]); return; }
        box.innerHTML = res[1].svg;  // markup the server drew (segno), no script in it
        digits.textContent = res[1].digits;
        ttl = res[1].ttl;
        deadline = Date.now() + res[1].left * 1000;
        tick();
      })
      .catch(function () { expiry.textContent = "Offline: retrying…"; })
      .then(function () { busy = false; });
  }

  function tick() {
    var left = Math.max(0, deadline - Date.now());
    if (meter) meter.style.width = Math.min(100, 100 * left / (ttl * 1000)) + "%";
    expiry.textContent = "Valid for " + Math.ceil(left / 1000) + " s; a new code comes before it expires.";
    if (left <= ahead()) refresh();
  }

  setInterval(tick, 500);
  tick();
  return { refresh: refresh };
})();
