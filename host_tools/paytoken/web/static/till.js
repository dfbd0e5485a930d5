// The till's code field: a keyboard-wedge scanner types 18 digits then Enter; a person types
// them in groups of four. Digits are grouped as they come, and the Damm check runs at 18
// digits: a mistyped digit is flagged here and the form is not sent.
"use strict";
(function () {
  var form = document.getElementById("payform");
  var code = document.getElementById("code");
  var amount = document.getElementById("amount");
  var note = document.getElementById("codecheck");
  if (!form || !code) return;
  var LEN = 18;

  function digits() { return code.value.replace(/\D/g, ""); }
  function grouped(d) { return d.replace(/(\d{4})(?=\d)/g, "$1 "); }

  function show(state, text) {
    code.classList.remove("ok", "bad");
    if (state) code.classList.add(state);
    code.setAttribute("aria-invalid", state === "bad" ? "true" : "false");
    note.className = "check " + (state || "");
    note.textContent = text;
  }

  // -> true when the field holds a whole code with a right check digit.
  function judge() {
    var d = digits();
    if (d.length === 0) { show("", "Scan the customer's code, or type its 18 digits."); return false; }
    if (d.length < LEN) { show("", d.length + " of " + LEN + " digits"); return false; }
    if (d.length > LEN) { show("bad", "Too many digits: a code has " + LEN + ". Clear it and scan again."); return false; }
    if (PaytokenDamm.check(d) !== 0) {
      show("bad", "Check digit wrong: a digit is mistyped. Scan again or retype it.");
      return false;
    }
    show("ok", "Code complete, check digit right.");
    return true;
  }

  code.addEventListener("input", function () {
    var d = digits().slice(0, LEN + 1);
    var atEnd = code.selectionStart === code.value.length;
    var g = grouped(d);
    if (g !== code.value && atEnd) code.value = g;
    judge();
  });

  amount.addEventListener("keydown", function (e) {
    // Enter after the amount goes on to the code, unless a code is already there.
    if (e.key === "Enter" && digits().length === 0) { e.preventDefault(); code.focus(); }
  });

  form.addEventListener("submit", function (e) {
    if (!judge()) {
      e.preventDefault();
      if (digits().length < LEN) show("bad", "The code is incomplete: " + digits().length + " of " + LEN + " digits.");
      code.focus();
      code.select();
      return;
    }
    if (!/^\s*\d{1,10}([.,]\d{1,2})?\s*$/.test(amount.value)) {
      e.preventDefault();
      amount.classList.add("bad");
      note.className = "check bad";
      note.textContent = "Type the amount first, e.g. 12.50.";
      amount.focus();
      return;
    }
    document.getElementById("charge").disabled = true;  // one press, one payment
  });

  judge();
})();
