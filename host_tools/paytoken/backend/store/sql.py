"""The hot path's fixed SQL: named parameters (``:id``), which ``tx.Tx`` turns into
psycopg's style on PostgreSQL; no ORM and no SQL compilation per call.

Usage::

    row = tx.one(sql.SEL_TOKEN, {"id": token_id})
"""

from __future__ import annotations

from collections import namedtuple

TOK_COLS = ("status", "prefix", "secret_enc", "drift_s", "last_step", "pending_drift", "pending_step",
             "drift_at", "drift_off", "drift_ppm", "drift_p00", "drift_p01", "drift_p11",
             "last_used_at", "created_at", "guess_tat", "guess_hash", "prev_prefix")
N_TOK = len(TOK_COLS)
TokRow = namedtuple("TokRow", TOK_COLS)
PayTokRow = namedtuple("PayTokRow", TOK_COLS + ("limit_per_payment", "limit_per_day", "balance",
                                                   "currency", "spent_day", "spent", "stored", "m_tat",
                                                   "mt_tat"))
SEL_TOKEN = "SELECT " + ", ".join(TOK_COLS) + " FROM tokens WHERE id = :id"
SEL_PAY = (
    "SELECT " + ", ".join("t." + c for c in TOK_COLS) + ", t.limit_per_payment, t.limit_per_day, "
    "a.balance, a.currency, a.spent_day, a.spent, "
    "(SELECT p.id FROM payments p WHERE p.merchant_id = :m AND p.merchant_order_id = :o), "
    "(SELECT h.tat FROM throttles h WHERE h.key = :km), (SELECT h.tat FROM throttles h WHERE h.key = :kmt) "
    "FROM tokens t LEFT JOIN accounts a ON a.token_id = t.id WHERE t.id = :id")
PAY_COLS = ("id", "merchant_id", "merchant_order_id", "request_hash", "token_id", "amount", "currency",
             "status", "reason")
PayRow = namedtuple("PayRow", PAY_COLS)
SEL_PAYMENT = ("SELECT " + ", ".join(PAY_COLS) + " FROM payments "
                "WHERE merchant_id = :m AND merchant_order_id = :o")
# A write that depends on the token's guess budget being open (rules.TOKEN_GUESSES) says so
# in its WHERE: concurrent requests cannot together check more codes than the budget allows.
OPEN = "(guess_tat IS NULL OR guess_tat <= :open_by)"
GUESS = ("UPDATE tokens SET failures = failures + 1, guess_hash = :gh, guess_tat = "
          "CASE WHEN guess_tat IS NULL OR guess_tat < :now THEN :now ELSE guess_tat END + :iv "
          "WHERE id = :id AND " + OPEN + " RETURNING failures, guess_tat")
SUSPECT = "UPDATE tokens SET clock_suspect = clock_suspect + 1 WHERE id = :id AND " + OPEN
SET_PENDING = "UPDATE tokens SET pending_drift = :drift, pending_step = :step WHERE id = :id AND " + OPEN
ACCEPT = (
    "UPDATE tokens SET last_step = :step, drift = :drift, drift_s = :drift_s, drift_at = :at, "
    "drift_off = :off, drift_ppm = :ppm, drift_p00 = :p00, drift_p01 = :p01, drift_p11 = :p11, "
    "failures = 0, pending_drift = NULL, pending_step = NULL, last_used_at = :now "
    "WHERE id = :id AND last_step < :step AND status = 'active' AND " + OPEN)
SEL_STATUS = "SELECT status, guess_tat FROM tokens WHERE id = :id"
# The debit keeps the day's spending on the account and checks the per-day limit in the same
# statement, so concurrent payments of one token cannot overshoot it.
DEBIT = ("UPDATE accounts SET balance = balance - :amount, "
          "spent = CASE WHEN spent_day = :day THEN spent + :amount ELSE :amount END, spent_day = :day "
          "WHERE token_id = :id AND currency = :cur AND balance >= :amount "
          "AND CASE WHEN spent_day = :day THEN spent ELSE 0 END + :amount <= :lim")
ACCOUNT = "SELECT balance, currency, spent_day, spent FROM accounts WHERE token_id = :id"
# One GCRA charge (rules.Budget): no row back when the bucket is full (then nothing changes).
CHARGE = ("INSERT INTO throttles (key, tat) VALUES (:k, :first) ON CONFLICT (key) DO UPDATE SET tat = "
           "CASE WHEN throttles.tat < :now THEN :now ELSE throttles.tat END + :iv "
           "WHERE throttles.tat <= :open_by RETURNING tat")
TAT = "SELECT tat FROM throttles WHERE key = :k"
NO_LIMIT = 2**62
INSERT_PAYMENT = (
    "INSERT INTO payments (id, merchant_id, merchant_order_id, request_hash, token_id, amount, currency, "
    "status, reason, step, refunded, day, created_at, drift_off, drift_ppm) VALUES (:id, :m, :o, :req, "
    ":token_id, :amount, :currency, :status, :reason, :step, 0, :day, :now, :drift_off, :drift_ppm)")
