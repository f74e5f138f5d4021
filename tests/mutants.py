"""Mutation check for the security-critical lines: remove each rule, and a test must fail.

    .venv/bin/python tests/mutants.py            # every mutant; exit 1 if one survives
    .venv/bin/python tests/mutants.py consent    # those whose name contains "consent"

Each mutant is a one-place edit of the source (the snippet must occur exactly once, so a mutant whose
line was rewritten fails loudly instead of passing vacuously) applied to a copy of the repository, and
the tests that guard the rule run against that copy. ``tests/e2e/test_mutants.py`` runs this in the
suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "var", "node_modules", "__pycache__", ".pytest_cache",
                                     ".hypothesis", "*.egg-info", "miniprogram_stub")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]
    # further (path, original, mutated) edits, for a rule enforced in more than one place
    also: tuple[tuple[str, str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # for the guarding tests (e.g. GALERA_TESTS=1)


SEC = "tests/api/test_security_rules.py"
LEDGER = "tests/api/test_ledger.py"
FUNDING = "tests/api/test_funding.py"
PAUTH = "tests/api/test_partner_auth.py"
PDEBIT = "tests/api/test_partner_debits.py"
BIND = "tests/api/test_etc_bindings.py"
JOBS = "tests/api/test_jobs_outlive_errors.py"
LEASES = "tests/api/test_leases.py"
STATEMENTS = "tests/api/test_statements.py"
BOUND = "tests/api/test_bound_card.py"
CUSTOMERS = "tests/api/test_console_customers.py"
IDEXP = "tests/api/test_id_expiry.py"
STAFF = "tests/api/test_staff_auth.py"
PROPOSALS = "tests/api/test_proposals.py"
CONSOLE_MC = "tests/api/test_console_maker_checker.py"
MUTANTS = (
    # -- issue 19 money holes --
    Mutant(
        "a fresh install starts with no risk rule in force",
        "services/risk/rules.py",
        "    if not path or await RiskRuleSet.all().exists():\n",
        "    if True:\n",
        ("tests/e2e/test_fresh_install.py::test_a_fresh_install_refuses_a_cloned_plate_with_no_command_typed",),
    ),
    Mutant(
        "production starts with no risk rule set in force",
        "app/db.py",
        "    if settings.is_production and not await rules.RiskRuleSet.all().exists():\n",
        "    if False:\n",
        ("tests/e2e/test_fresh_install.py::test_production_refuses_to_start_with_no_rule_set_unless_an_empty_one_was_loaded",),
    ),
    Mutant(
        "an account holder's identity is swapped for another person's ID card",
        "services/identity/id_card.py",
        "    return await accounts.exists() or await signed.exists()\n",
        "    return False\n",
        ("tests/api/test_identity.py::test_an_account_holder_cannot_become_someone_else",
         "tests/api/test_identity.py::test_a_signer_cannot_become_someone_else"),
    ),
    Mutant(
        "every partner with an ETC scope is told of every binding",
        "services/partners/notify.py",
        "    return bool(ETC_SCOPES & set(partner.scopes or ())) and card_network(binding) in (partner.card_networks or ())\n",
        "    return bool(ETC_SCOPES & set(partner.scopes or ()))\n",
        ("tests/api/test_partner_notifications.py::test_a_binding_event_goes_only_to_the_issuer_of_that_card",),
    ),
    Mutant(
        "a partner debit that moved nothing (refused by risk control, settled by WeChat Pay) is refunded",
        "services/partners/debits.py",
        "        if row.status != DebitStatus.SUCCEEDED:  # only money booked on the account goes back to it\n",
        "        if row.status == DebitStatus.ARREARS:\n",
        ("tests/api/test_partner_refunds.py::test_a_debit_risk_control_held_cannot_be_refunded",
         "tests/api/test_partner_refunds.py::test_arrears_settled_by_wechat_pay_are_not_refunded_into_the_account"),
    ),
    Mutant(
        "a withdrawal not yet final frees its room under the Class III cap",
        "services/accounts/funding.py",
        "        await ledger.hold_return(conn, account.id, amount_fen)  # until final, its reversal keeps its room\n",
        "        pass\n",
        ("tests/api/test_funding.py::test_a_class_iii_withdrawal_not_yet_final_keeps_its_room_under_the_cap",
         "tests/api/test_funding.py::test_a_class_iii_withdrawal_rejected_by_an_operator_returns_within_the_cap"),
        also=(("services/accounts/funding.py",
               "counterparty=account.bound_card_masked, reserved_fen=transfer.amount_fen, settling=True,\n"
               "                          reversal=True)",
               "counterparty=account.bound_card_masked, settling=True,\n                          reversal=True)"),),
    ),
    Mutant(
        "money returned to an account skips the balance cap",
        "services/accounts/ledger.py",
        "        if rules.balance_cap_fen is not None and balance + pending + amount_fen > rules.balance_cap_fen:\n",
        "        if rules.balance_cap_fen is not None and not reversal and balance + pending + amount_fen > "
        "rules.balance_cap_fen:\n",
        ("tests/api/test_partner_refunds.py::test_money_returned_to_a_full_class_iii_account_is_held_to_the_cap",),
    ),
    Mutant(
        "a transaction aborted by a lock conflict is not run again",
        "services/db.py",
        "ATTEMPTS = 5\n",
        "ATTEMPTS = 1\n",
        ("tests/api/test_auth.py::test_a_conflict_aborted_transaction_is_run_again",),
    ),
    Mutant(
        "a certification conflict on a multi-primary cluster (1213 at COMMIT) is not run again",
        "services/db.py",
        "RETRYABLE_CODES = {1213, 1205, 9007, 8002}\n",
        "RETRYABLE_CODES = {1205, 9007, 8002}\n",
        ("tests/resilience/test_galera.py::test_concurrent_debits_on_one_account_through_two_nodes_book_exactly_what_fits",),
        env=(("GALERA_TESTS", "1"),),
    ),
    Mutant(
        "an abuse limit counts but never refuses",
        "services/ratelimit.py",
        "    if count > allowed:\n",
        "    if False:\n",
        ("tests/api/test_rate_limits.py::test_logins_from_one_address_are_limited",),
    ),
    Mutant(
        "a database that went away is a 500, not 503 DB_UNAVAILABLE",
        "app/errors.py",
        "    if is_unavailable(exc):\n",
        "    if False:\n",
        ("tests/resilience/test_db_restart.py",),
        env=(("RESILIENCE_TESTS", "1"),),
    ),
    Mutant(
        "a revoked login's access tokens still work",
        "services/auth/tokens.py",
        "    if ctx.revocations.is_revoked(claims.sid):  # logged out, or its refresh token leaked\n",
        "    if False:\n",
        ("tests/api/test_token_revocation.py::test_logging_out_ends_the_access_token_at_once",),
    ),
    Mutant(
        "a WeChat Pay 5xx is taken for a refusal (a refund it made is given back, and can be paid again)",
        "integrations/wechatpay.py",
        "            if status >= 500 or status == 429:\n",
        "            if False:\n",
        ("tests/resilience/test_upstream_faults.py::test_a_refund_made_before_its_5xx_reply_is_not_refunded_twice",),
    ),
    Mutant(
        "a subscribe message whose reply was lost is sent again",
        "services/notifications/__init__.py",
        "            if exc.maybe_done:\n",
        "            if False:\n",
        ("tests/resilience/test_upstream_faults.py::"
         "test_a_subscribe_message_whose_reply_was_lost_is_not_sent_again_by_the_outbox",),
    ),
    Mutant(
        "intent check ignores whose face it was",
        "services/identity/face.py",
        "if fv is None or found is None or fv.id_number_index != found[0].id_number_index:",
        "if fv is None or found is None:",
        (f"{SEC}::test_a_face_check_of_the_previous_person_cannot_sign_for_the_next",),
    ),
    Mutant(
        "audit verify skips the prev_hash link",
        "services/audit.py",
        "            if ev.prev_hash != prev_hash:\n",
        "            if False:\n",
        (f"{SEC}::test_an_edited_event_with_a_recomputed_hash_breaks_the_link",),
    ),
    Mutant(
        "face starts are not limited",
        "services/identity/face.py",
        "    await attempts.take_slot(user_id, AttemptKind.FACE, ctx.settings.daily_attempt_limit)\n",
        "",
        (f"{SEC}::test_face_starts_are_limited_per_day",),
    ),
    Mutant(
        "bank-card checks are not limited",
        "services/identity/bank_card.py",
        "    await attempts.take_slot(user_id, AttemptKind.BANK_CARD, ctx.settings.daily_attempt_limit)\n",
        "",
        (f"{SEC}::test_bank_card_checks_are_limited_per_day",),
    ),
    Mutant(
        "/me shows an expired ID card as done",
        "services/identity/status.py",
        "    id_ok = valid_until is None or valid_until >= china_day()\n",
        "    id_ok = True\n",
        (f"{SEC}::test_an_expired_id_card_is_not_shown_as_done",),
    ),
    Mutant(
        "upload pixel cap removed",
        "services/identity/uploads.py",
        "            if w * h > MAX_PIXELS:\n                return \"too_large\"\n",
        "",
        (f"{SEC}::test_an_image_of_too_many_pixels_is_refused_however_small_the_file",),
    ),
    Mutant(
        "files sealed without their purpose",
        "core/pii.py",
        "        ct = self._keys[self._active].encrypt(nonce, data, purpose.encode())\n        return f\"{_PREFIX}.{self._active}.\".encode() + nonce + ct",
        "        ct = self._keys[self._active].encrypt(nonce, data, None)\n        return f\"{_PREFIX}.{self._active}.\".encode() + nonce + ct",
        (f"{SEC}::test_a_sealed_file_opens_only_for_its_purpose",),
    ),
    Mutant(
        "+86 phones are masked as cards",
        "core/pii.py",
        r'_PHONE_RE = re.compile(r"(?<![0-9A-Za-z+])(?:\+?86[- ]?)?1[3-9]\d{9}" + _EDGE_R)',
        r'_PHONE_RE = re.compile(_EDGE_L + r"1[3-9]\d{9}" + _EDGE_R)',
        ("tests/unit/test_log_redaction.py::test_a_plus_86_phone_is_masked_as_a_phone_not_as_a_card",),
    ),
    Mutant(
        "a face result without verify_ret is a pass",
        "services/identity/face.py",
        "    if isinstance(ret, bool) or not isinstance(ret, int):\n        return None\n",
        "    if isinstance(ret, bool) or not isinstance(ret, int):\n        return PASSED_RET\n",
        (f"{SEC}::test_a_face_result_without_verify_ret_is_not_a_pass",),
    ),
    Mutant(
        "consent accepts anything truthy",
        "handlers/spec.py",
        'TrueOnly = Annotated[bool, Strict(), WithJsonSchema({"type": "boolean", "const": True})]',
        'TrueOnly = Annotated[bool, WithJsonSchema({"type": "boolean", "const": True})]',
        ("tests/api/test_hostile_input.py::test_consent_must_be_the_boolean_true",),
        # bodies are strict as a whole too: loosen both, as a careless refactor would
        also=(("handlers/spec.py", 'model_config = ConfigDict(strict=True, extra="forbid")',
               'model_config = ConfigDict(extra="forbid")'),),
    ),
    Mutant(
        "bodies coerce types",
        "handlers/spec.py",
        'model_config = ConfigDict(strict=True, extra="forbid")',
        'model_config = ConfigDict(extra="forbid")',
        ("tests/api/test_hostile_input.py::test_body_ids_must_be_json_integers",),
        also=(("handlers/spec.py", "Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]",
               "Id = Annotated[int, Field(ge=1, le=MAX_ID)]"),),
    ),
    Mutant(
        "bodies ignore unknown fields",
        "handlers/spec.py",
        'model_config = ConfigDict(strict=True, extra="forbid")',
        'model_config = ConfigDict(strict=True, extra="ignore")',
        ("tests/api/test_hostile_input.py::test_unknown_fields_are_refused",),
    ),
    Mutant(
        "a token's sub is not checked",
        "core/tokens.py",
        '            raise TokenInvalid("sub is not a user id")',
        "            pass",
        ("tests/api/test_hostile_input.py::test_signed_tokens_with_malformed_claims_are_401",),
    ),
    Mutant(
        "path ids are not bounded",
        "handlers/spec.py",
        "        lambda v: isinstance(v, int) and 1 <= v <= MAX_ID,",
        "        lambda v: isinstance(v, int),",
        ("tests/api/test_hostile_input.py::test_contract_ids_out_of_range_are_not_found",),
    ),
    Mutant(
        "two drafts may be open at once",
        "services/esign/contracts.py",
        "            draft_key=key_of_draft,\n",
        "            draft_key=None,\n",
        ("tests/api/test_contract_drafts.py::test_concurrent_prepares_make_one_draft",),
    ),
    Mutant(
        "the daily outflow limit is not checked",
        "services/accounts/ledger.py",
        "            if today + amount_fen > rules.daily_outflow_fen or year + amount_fen > rules.yearly_outflow_fen:\n",
        "            if year + amount_fen > rules.yearly_outflow_fen:\n",
        (f"{LEDGER}::test_fifty_concurrent_outflows_stop_exactly_at_the_daily_limit",),
    ),
    Mutant(
        "the yearly outflow limit is not checked",
        "services/accounts/ledger.py",
        "            if today + amount_fen > rules.daily_outflow_fen or year + amount_fen > rules.yearly_outflow_fen:\n",
        "            if today + amount_fen > rules.daily_outflow_fen:\n",
        (f"{LEDGER}::test_class_iii_daily_and_yearly_outflow_limits",),
    ),
    Mutant(
        "a debit may overdraw",
        "services/accounts/ledger.py",
        "        if balance < amount_fen:\n            raise InsufficientFunds()\n",
        "",
        (f"{LEDGER}::test_concurrent_outflows_never_overdraw",),
    ),
    Mutant(
        "a credit may pass the Class III balance cap",
        "services/accounts/ledger.py",
        "        if rules.balance_cap_fen is not None and balance + pending + amount_fen > rules.balance_cap_fen:\n",
        "        if False:\n",
        (f"{LEDGER}::test_class_iii_balance_cap_holds_under_concurrent_credits",),
    ),
    Mutant(
        "top-ups are not held to the Class III cap before money moves",
        "services/accounts/ledger.py",
        "    if cap is not None and account.balance_fen + account.pending_in_fen + amount_fen > cap:\n",
        "    if False:\n",
        (f"{FUNDING}::test_class_iii_top_ups_past_the_cap_are_refused_before_money_moves",),
    ),
    Mutant(
        "a movement already posted is posted again",
        "services/accounts/ledger.py",
        "    if existing is not None:\n        return Posted(existing, account, False)\n",
        "",
        (f"{LEDGER}::test_the_same_movement_posts_once",),
    ),
    Mutant(
        "ledger check ignores the sum of entries",
        "services/accounts/ledger.py",
        "        if total != r[\"balance\"] or (last is not None and int(last) != r[\"balance\"]):\n",
        "        if last is not None and int(last) != r[\"balance\"]:\n",
        (f"{LEDGER}::test_ledger_check_catches_a_deleted_entry",),
    ),
    Mutant(
        "an Idempotency-Key may be reused for another request",
        "services/idempotency.py",
        "    if record.request_hash != digest:\n        raise IdempotencyKeyReused(field=\"Idempotency-Key\")\n",
        "",
        (f"{FUNDING}::test_the_same_key_with_another_request_is_refused",),
    ),
    Mutant(
        "the per-person account limit is not checked",
        "services/accounts/opening.py",
        "        if count >= rules.max_accounts_per_person:\n",
        "        if False:\n",
        ("tests/api/test_account_opening.py::test_a_sixth_class_ii_account_is_refused",
         "tests/api/test_account_opening.py::test_two_applications_submitted_at_once_cannot_pass_the_limit"),
    ),
    Mutant(
        "a nonce may be used again",
        "services/partners/auth.py",
        "        await PartnerNonce.create(partner_id=partner.id, nonce=values[\"X-Nonce\"], created_at=utcnow())\n",
        "        pass\n",
        (f"{PAUTH}::test_a_nonce_is_spent_once_and_only_by_a_signed_request",),
    ),
    Mutant(
        "a partner's timestamp is not checked",
        "services/partners/auth.py",
        "    if abs((now if now is not None else time.time()) - int(values[\"X-Timestamp\"])) > WINDOW_S:\n",
        "    if False:\n",
        (f"{PAUTH}::test_a_timestamp_outside_five_minutes_is_refused",),
    ),
    Mutant(
        "a rotated secret stays valid for ever",
        "services/partners/auth.py",
        "partner.previous_valid_until > utcnow():",
        "partner.previous_valid_until is not None:",
        (f"{PAUTH}::test_a_rotated_secret_keeps_working_for_the_grace_period_only",),
    ),
    Mutant(
        "a request's body is not signed",
        "services/partners/signing.py",
        "canonical_query(query), timestamp, nonce, body_sha256(body)))",
        "canonical_query(query), timestamp, nonce, body_sha256(b\"\")))",
        (f"{PAUTH}::test_each_signed_field_changed_in_turn_breaks_the_signature",),
    ),
    Mutant(
        "a disabled partner is served",
        "services/partners/auth.py",
        "    if partner.status != PartnerStatus.ACTIVE:\n        raise PartnerDisabled()\n",
        "",
        (f"{PAUTH}::test_a_disabled_partner_is_refused",),
    ),
    Mutant(
        "a debit's category needs no scope of its own",
        "services/partners/debits.py",
        "    require_scope(caller, CATEGORY_SCOPES[fields[\"category\"]])\n",
        "",
        (f"{PDEBIT}::test_each_category_needs_its_scope",),
    ),
    Mutant(
        "an out_trade_no may be reused for another debit",
        "services/partners/debits.py",
        "    if found.request_hash != digest:\n        raise OutTradeNoConflict(field=\"out_trade_no\")\n",
        "",
        (f"{PDEBIT}::test_a_retry_answers_the_first_answer_and_another_body_conflicts",),
    ),
    Mutant(
        "refunds may add up to more than the debit",
        "services/partners/debits.py",
        "        if row.refunded_fen + fields[\"amount_fen\"] > row.amount_fen:\n",
        "        if False:\n",
        (f"{PDEBIT}::test_refunds_are_idempotent_and_never_exceed_the_debit",),
    ),
    Mutant(
        "a refused debit is not owed",
        "services/partners/debits.py",
        "            await EtcBinding.filter(id=binding.id).using_db(conn).update(arrears_fen=F(\"arrears_fen\") + row.amount_fen)\n",
        "",
        (f"{PDEBIT}::test_insufficient_funds_is_refused_and_recorded_as_arrears",),
    ),
    Mutant(
        "a binding with arrears may be unbound",
        "services/etc/bindings.py",
        "        if to == B.UNBOUND and current.arrears_fen > 0:\n",
        "        if False:\n",
        (f"{BIND}::test_unbinding_is_refused_while_arrears_are_owed",),
    ),
    Mutant(
        "a card may be bound twice",
        "services/etc/bindings.py",
        "card_masked=mask_card(card_number), obu_id=obu_id, plate=plate, card_key=index, plate_key=plate,",
        "card_masked=mask_card(card_number), obu_id=obu_id, plate=plate, card_key=None, plate_key=None,",
        (f"{BIND}::test_one_binding_per_card_and_per_plate_across_users",
         f"{BIND}::test_two_users_binding_one_card_at_once_make_one_binding"),
    ),
    Mutant(
        "a callback may point inside the bank's network",
        "integrations/webhooks.py",
        "        bad = [str(a) for a in addresses if _refused(a, self._allow_loopback)]\n",
        "        bad = []\n",
        ("tests/api/test_partner_notifications.py::test_private_loopback_and_link_local_addresses_are_refused",),
    ),
    Mutant(
        "plates may contain I and O",
        "core/validators.py",
        '_L = "A-HJ-NP-Z"',
        '_L = "A-Z"',
        ("tests/unit/test_plates.py",),
    ),
    Mutant(
        "validators match a prefix (a trailing newline passes)",
        "core/validators.py",
        "    return bool(PLATE_RE.fullmatch(value or \"\"))\n",
        "    return bool(PLATE_RE.match(value or \"\"))\n",
        ("tests/unit/test_plates.py::test_a_trailing_newline_is_not_part_of_a_plate",),
    ),
    Mutant(
        "a WeChat Pay notification's timestamp is not checked",
        "integrations/wechatpay.py",
        "        if skew > SKEW_S:\n",
        "        if False:\n",
        ("tests/api/test_payments.py::test_a_tampered_notification_is_refused_and_changes_nothing",),
    ),
    Mutant(
        "a notification already in the inbox is applied again when it arrives in a batch",
        "services/payments/notifications.py",
        "            if item.event_id not in stored:\n",
        "            if True:\n",
        ("tests/api/test_payment_batches.py::test_one_batch_applies_each_notification_once_and_refuses_only_the_mismatch",),
    ),
    Mutant(
        "a copy of a refused notification in the same batch is acknowledged",
        "services/payments/notifications.py",
        "                results.append(outcome)  # a copy of a refused one is refused too\n",
        "                results.append(outcome if fresh[item.event_id] is item else \"duplicate\")\n",
        ("tests/api/test_payment_batches.py::test_one_batch_applies_each_notification_once_and_refuses_only_the_mismatch",),
    ),
    Mutant(
        "a paid amount is not compared with the order",
        "services/payments/orders.py",
        "    if state == \"SUCCESS\" and (amount.get(\"total\") != order.amount_fen or amount.get(\"currency\", \"CNY\") != \"CNY\"):\n",
        "    if False:\n",
        ("tests/api/test_payments.py::test_a_notification_for_another_amount_is_refused",),
    ),
    Mutant(
        "a debt may have two payable orders",
        "services/payments/orders.py",
        "idempotency_id=idempotency_id, amount_fen=amount, description=DESCRIPTIONS[purpose], open_key=key,",
        "idempotency_id=idempotency_id, amount_fen=amount, description=DESCRIPTIONS[purpose], open_key=None,",
        ("tests/api/test_payments.py::test_the_database_keeps_one_payable_order_per_debt_when_lookups_race",),
    ),
    Mutant(
        "a message push's signature is not checked",
        "services/notifications/push.py",
        "        check_signature(settings.wechat_push_token, query.get(\"signature\", \"\"), query.get(\"timestamp\", \"\"),\n"
        "                        query.get(\"nonce\", \"\"))\n",
        "        pass\n",
        ("tests/api/test_message_push.py::test_a_wrongly_signed_push_is_refused_and_recorded_nowhere",),
    ),
    Mutant(
        "refunds may add up to more than was paid",
        "services/payments/refunds.py",
        "            if amount <= 0 or row.refunded_fen + amount > row.amount_fen:\n",
        "            if amount <= 0:\n",
        ("tests/api/test_payments.py::test_a_device_fee_is_refunded_in_parts_never_above_what_was_paid",),
    ),
    Mutant(
        "a downloaded bill is used whatever its hash",
        "integrations/wechatpay.py",
        "    if not hash_value or not hmac.compare_digest(digest, str(hash_value).lower()):\n",
        "    if False:\n",
        ("tests/unit/test_trade_bill.py::test_the_downloaded_file_is_used_only_when_its_hash_matches",),
    ),
    Mutant(
        "a bill whose summary disagrees with its lines is trusted",
        "services/payments/bills.py",
        "    if not agrees:\n",
        "    if False:\n",
        ("tests/unit/test_trade_bill.py::test_a_bill_that_does_not_add_up_is_refused",),
    ),
    Mutant(
        "the bill's amounts are not compared with our orders",
        "services/payments/bills.py",
        "        if order.amount_fen != line.amount_fen:\n",
        "        if False:\n",
        ("tests/api/test_payment_bills.py::test_the_bill_finds_a_lost_notification_and_an_amount_that_differs",),
    ),
    Mutant(
        "a payment the bill shows but we never recorded goes unnoticed",
        "services/payments/bills.py",
        "        if order.status != OrderStatus.PAID:\n",
        "        if False:\n",
        ("tests/api/test_payment_bills.py::test_the_bill_finds_a_lost_notification_and_an_amount_that_differs",),
    ),
    Mutant(
        "our payments missing from the bill go unnoticed",
        "services/payments/bills.py",
        "        if order.out_trade_no not in lines:\n",
        "        if False:\n",
        ("tests/api/test_payment_bills.py::test_what_we_have_and_the_bill_lacks_is_found",),
    ),
    Mutant(
        "a velocity limit does not count the movement being decided",
        "services/risk/engine.py",
        "        count, total = count + 1, total + amount  # this one included\n",
        "        pass\n",
        ("tests/api/test_risk.py::test_fifty_parallel_debits_against_a_limit_of_n_let_exactly_n_through",),
    ),
    Mutant(
        "shadow rules are enforced",
        "services/risk/engine.py",
        "    enforced = [r[\"action\"] for r in reasons if not r[\"shadow\"]]\n",
        "    enforced = [r[\"action\"] for r in reasons]\n",
        ("tests/api/test_risk.py::test_shadow_rules_change_nothing_and_record_what_they_would_have_done",),
    ),
    Mutant(
        "an expired list entry still blocks",
        "services/risk/engine.py",
        "        f\"SELECT list, action FROM risk_list_entries WHERE ({pairs}) AND (expires_at IS NULL OR expires_at > {m})\",  # nosec B608\n",
        "        f\"SELECT list, action FROM risk_list_entries WHERE ({pairs}) AND (expires_at IS NULL OR {m} IS NOT NULL)\",\n",
        ("tests/api/test_risk.py::test_listed_values_are_blocked_until_they_expire_and_the_allow_list_wins",),
    ),
    Mutant(
        "a plate seen too far away too soon is let through",
        "services/risk/engine.py",
        "        if km > rule.min_distance_km and km / hours > rule.max_speed_kmh:\n",
        "        if False:\n",
        ("tests/api/test_risk_patterns.py::test_a_cloned_plate_is_blocked_at_the_second_place",),
    ),
    Mutant(
        "a top-up risk control holds is sent anyway",
        "services/accounts/funding.py",
        "        status=TransferStatus.HELD if verdict == \"review\" else TransferStatus.PENDING)\n",
        "        status=TransferStatus.PENDING)\n",
        ("tests/api/test_risk_patterns.py::test_card_testing_is_held_and_an_operator_rejects_it",),
    ),
    Mutant(
        "an operator's rejection keeps the held money reserved",
        "services/accounts/funding.py",
        "        return await _apply(conn, transfer.id, rejected, actor=actor, status=TransferStatus.HELD, audit_data=verdict)\n",
        "        transfer.status = TransferStatus.DECLINED\n        await transfer.save(using_db=conn)\n        return transfer\n",
        ("tests/api/test_risk_patterns.py::test_card_testing_is_held_and_an_operator_rejects_it",),
    ),
    Mutant(
        "a listed ID opens an account",
        "services/accounts/opening.py",
        "        if decision is not None and decision.refusal is not None:\n",
        "        if False:\n",
        ("tests/api/test_risk_patterns.py::test_a_listed_id_cannot_open_an_account",),
    ),
    Mutant(
        "a debit risk control holds is booked anyway",
        "services/partners/debits.py",
        "        if refusal:  # recorded with its reasons; nothing booked, nothing owed\n",
        "        if False:\n",
        ("tests/api/test_risk.py::test_a_burst_on_one_account_is_held_with_its_reasons_and_nothing_moves",),
    ),
    Mutant(
        "one-shot WeChat calls retried after a lost reply",
        "integrations/wechat/miniprogram.py",
        "                if not idempotent:  # it may have been done: the answer was lost, not the work\n",
        "                if False:\n",
        ("tests/api/test_wechat_failures.py::test_login_whose_reply_was_lost_is_503_not_code_invalid",),
    ),
    # -- issue 19 section 5 gaps --
    Mutant(
        "the last risk rule to fire decides, not the strongest",
        "services/risk/engine.py",
        "    return Decision(max(enforced, key=STRENGTH.__getitem__, default=\"allow\"), rule_set.version, reasons)\n",
        "    return Decision(enforced[-1] if enforced else \"allow\", rule_set.version, reasons)\n",
        ("tests/unit/test_risk_rules.py::test_the_strongest_action_wins_in_whatever_order_the_rules_fire",),
    ),
    Mutant(
        "a header sent twice is taken as its first copy",
        "core/validators.py",
        "    if len(values) > 1:\n",
        "    if False:\n",
        (f"{PAUTH}::test_a_signing_header_given_twice_is_refused",
         "tests/api/test_hostile_input.py::test_an_idempotency_key_given_twice_is_refused"),
    ),
    Mutant(
        "a JSON body in UTF-16, UTF-32 or with lone surrogates is read",
        "handlers/spec.py",
        "        text = raw.decode(\"utf-8\")\n",
        "        text = raw\n",
        ("tests/api/test_hostile_input.py::test_a_body_that_is_not_utf8_json_is_400",
         f"{PAUTH}::test_a_signed_body_that_is_not_utf8_json_is_400"),
    ),
    Mutant(
        "bidi controls and full-width lookalikes reach partner statements",
        "core/validators.py",
        "_TEXT_REFUSED = (r\"\\x00-\\x1f\\x7f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\"\n"
        "                 r\"\\uff10-\\uff19\\uff21-\\uff3a\\uff41-\\uff5a\\uff1d\\uff0b\\uff0d\\uff20\")\n",
        "_TEXT_REFUSED = r\"\\x00-\\x1f\\x7f\"\n",
        (f"{PDEBIT}::test_bidi_controls_and_fullwidth_lookalikes_are_refused_in_statement_texts",),
    ),
    Mutant(
        "Class III ID collection starts past the threshold, not at it",
        "services/accounts/ledger.py",
        "    if flagged is None and total >= CLASS_III_ID_COLLECTION_FEN:\n",
        "    if flagged is None and total > CLASS_III_ID_COLLECTION_FEN:\n",
        (f"{FUNDING}::test_settled_class_iii_top_ups_count_toward_id_collection_from_the_threshold_itself",),
    ),
    Mutant(
        "settled top-ups are not Class III flow",
        "services/accounts/ledger.py",
        "    if account.account_class == \"III\" and not reversal:\n",
        "    if account.account_class == \"III\" and not settling:\n",
        (f"{FUNDING}::test_settled_class_iii_top_ups_count_toward_id_collection_from_the_threshold_itself",),
    ),
    Mutant(
        "a card-network answer for another amount is booked",
        "services/accounts/funding.py",
        "    if answer.amount_fen != transfer.amount_fen or answer.direction != _wire(transfer.direction) or answer.status not in (\n",
        "    if answer.direction != _wire(transfer.direction) or answer.status not in (\n",
        (f"{FUNDING}::test_a_network_answer_for_another_amount_is_left_pending_and_never_booked",),
    ),
    Mutant(
        "an account opens a year under the minimum age",
        "services/accounts/opening.py",
        "    if age_on(identity.birth_date, china_day()) < rules.min_age_years:\n",
        "    if age_on(identity.birth_date, china_day()) < rules.min_age_years - 1:\n",
        ("tests/api/test_account_opening.py::test_sixteen_today_opens_and_fifteen_is_refused",),
    ),
    Mutant(
        "the ID card step lets a fifteen-year-old through",
        "services/identity/id_card.py",
        "        if age_on(rid.birth_date, today) < youngest_opening_age():\n",
        "        if age_on(rid.birth_date, today) < youngest_opening_age() - 1:\n",
        ("tests/api/test_account_opening.py::test_sixteen_today_opens_and_fifteen_is_refused",),
    ),
    Mutant(
        "a birthday counts from the day after",
        "core/validators.py",
        "    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))\n",
        "    return day.year - birth.year - ((day.month, day.day) <= (birth.month, birth.day))\n",
        ("tests/api/test_account_opening.py::test_sixteen_today_opens_and_fifteen_is_refused",),
    ),
    Mutant(
        "a partner debit is booked on the UTC day",
        "services/partners/debits.py",
        "            booked_day=china_day(now),\n",
        "            booked_day=now.date(),\n",
        (f"{PDEBIT}::test_statements_are_by_the_china_day_at_seven_in_the_morning",),
    ),
    Mutant(
        "a partner refund is booked on the UTC day",
        "services/partners/debits.py",
        "            booked_day=china_day(now), using_db=conn)\n",
        "            booked_day=now.date(), using_db=conn)\n",
        (f"{PDEBIT}::test_statements_are_by_the_china_day_at_seven_in_the_morning",),
    ),
    Mutant(
        "a statement for the China day is refused before UTC's has begun",
        "services/partners/debits.py",
        "    return day <= china_day(utcnow())\n",
        "    return day <= utcnow().date()\n",
        (f"{PDEBIT}::test_statements_are_by_the_china_day_at_seven_in_the_morning",),
    ),
    Mutant(
        "the bill's day runs midnight to midnight UTC",
        "services/payments/bills.py",
        "    start = datetime.combine(day, time(0), tzinfo=CHINA_TZ)\n",
        "    start = datetime.combine(day, time(0), tzinfo=CHINA_TZ) + timedelta(hours=8)\n",
        ("tests/api/test_payment_bills.py::test_the_bill_day_is_chinas_at_seven_in_the_morning",),
    ),
    Mutant(
        "the daily bill job picks yesterday by UTC",
        "services/payments/bills.py",
        "    local = now.astimezone(CHINA_TZ)\n",
        "    local = now\n",
        ("tests/api/test_payment_bills.py::test_the_bill_day_is_chinas_at_seven_in_the_morning",),
    ),
    Mutant(
        "a refund's final state may be replaced by another",
        "services/payments/refunds.py",
        "    if refund_row.status != R.PROCESSING or state not in FINAL_STATES:\n",
        "    if state not in FINAL_STATES:\n",
        ("tests/api/test_payments.py::test_a_refunds_final_state_is_applied_once",),
    ),
    Mutant(
        "a refund processing here that the bill shows is left processing",
        "services/payments/bills.py",
        "            if row.status == RefundStatus.PROCESSING:\n",
        "            if False:\n",
        ("tests/api/test_payment_bills.py::test_a_refund_still_processing_here_that_the_bill_shows_is_settled_from_wechat_pay",),
    ),
    Mutant(
        "a partner refunds a category it lost the scope of",
        "services/partners/debits.py",
        "    require_scope(caller, CATEGORY_SCOPES[target.category])\n",
        "    pass\n",
        (f"{PDEBIT}::test_a_partner_that_lost_a_categorys_scope_cannot_refund_its_debits",),
    ),
    Mutant(
        "a WeChat Pay notification for another appid is applied",
        "services/payments/orders.py",
        "    if tx.get(\"mchid\") != ctx.settings.wechatpay_mchid or tx.get(\"appid\") != ctx.settings.wechat_appid:\n",
        "    if tx.get(\"mchid\") != ctx.settings.wechatpay_mchid:\n",
        ("tests/api/test_payments.py::test_a_notification_for_another_app_is_refused",),
    ),
    Mutant(
        "an open order for an older amount is answered again",
        "services/payments/orders.py",
        "        if existing.amount_fen == amount and existing.time_expire > utcnow() + timedelta(minutes=1):\n",
        "        if existing.time_expire > utcnow() + timedelta(minutes=1):\n",
        ("tests/api/test_payments.py::test_a_debt_that_grew_is_not_paid_through_its_older_order",),
    ),
    Mutant(
        "a refund of nothing left is sent",
        "services/payments/refunds.py",
        "            if amount <= 0 or row.refunded_fen + amount > row.amount_fen:\n",
        "            if row.refunded_fen + amount > row.amount_fen:\n",
        ("tests/api/test_payments.py::test_nothing_left_to_refund_is_refused_and_moves_nothing",),
    ),
    # -- issue 20 jobs outlive errors --
    Mutant(
        "one failed turn ends a background loop for good (the database lost mid-claim stops the jobs)",
        "core/loops.py",
        "        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one turn (see the module doc)\n",
        "        except ArithmeticError as exc:\n",
        (f"{JOBS}::test_the_job_loop_outlives_the_database_lost_mid_claim",
         f"{JOBS}::test_the_revocation_poller_outlives_the_database",
         f"{JOBS}::test_the_outbox_loop_outlives_the_database",
         "tests/unit/test_loops.py"),
    ),
    Mutant(
        "a job whose lease row is out of reach stops the jobs after it",
        "services/jobs.py",
        "            except Exception as exc:  # noqa: BLE001 - its lease row is out of reach: the next jobs still get their turn\n",
        "            except ArithmeticError as exc:\n",
        (f"{JOBS}::test_a_job_whose_lease_row_is_out_of_reach_does_not_stop_the_others",),
    ),
    Mutant(
        "the wait after failures grows without bound",
        "core/loops.py",
        "        return min(self.cap_s, self.first_s * 2 ** min(self.failures - 1, 32))\n",
        "        return self.first_s * 2 ** min(self.failures - 1, 32)\n",
        ("tests/unit/test_loops.py::test_the_wait_doubles_up_to_its_cap_and_a_success_starts_it_over",),
    ),
    Mutant(
        "a loop that recovered keeps waiting as after its failures",
        "core/loops.py",
        "            backoff.succeeded()\n",
        "            pass\n",
        ("tests/unit/test_loops.py::test_failed_turns_do_not_end_the_loop_and_a_success_resets_the_backoff",),
    ),
    Mutant(
        "a job's success is not stamped, so its health cannot be told",
        "services/jobs.py",
        "    await release(job.name, holder, last_run_at=done_at, last_ok_at=done_at, last_result=result)\n",
        "    await release(job.name, holder, last_run_at=done_at, last_result=result)\n",
        (f"{JOBS}::test_the_job_loop_outlives_the_database_lost_mid_claim",),
    ),
    Mutant(
        "a job that stopped running is never reported overdue",
        "services/jobs.py",
        "        overdue = (now - (last_ok_at or since)).total_seconds() > allowed\n",
        "        overdue = False\n",
        (f"{JOBS}::test_an_overdue_job_is_reported_by_readiness_and_metrics",),
    ),
    # -- issue 20 unknown outcomes --
    Mutant(
        "a Galera node out of the Primary Component (1180) is a 500, not 503 DB_UNAVAILABLE",
        "services/db.py",
        "UNAVAILABLE_CODES = {2002, 2003, 2006, 2013, 2055, 1053, 1927, 1047, 1180, 9001, 9002, 9005}\n",
        "UNAVAILABLE_CODES = {2002, 2003, 2006, 2013, 2055, 1053, 1927, 1047, 9001, 9002, 9005}\n",
        ("tests/unit/test_db_unavailable.py",
         "tests/api/test_unknown_outcomes.py::test_a_node_out_of_the_primary_component_is_a_503_not_a_500"),
    ),
    Mutant(
        "a conflict that outlasts atomic's tries is a 500, not 503 CONFLICT_RETRY",
        "app/errors.py",
        "    if is_conflict(exc):\n",
        "    if False:\n",
        ("tests/api/test_unknown_outcomes.py::test_a_conflict_that_outlasts_the_tries_is_a_503_with_retry_after",),
    ),
    Mutant(
        "atomic runs a conflicted transaction again at once, with no wait between tries",
        "services/db.py",
        "                await asyncio.sleep(backoff_s(attempt))\n",
        "                pass\n",
        ("tests/api/test_atomic.py::test_a_conflict_is_run_again_after_a_jittered_bounded_wait_then_raised",),
    ),
    Mutant(
        "atomic's wait between tries grows without a cap",
        "services/db.py",
        "    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))\n",
        "    return random.uniform(0, BACKOFF_BASE_S * 2**attempt)\n",
        ("tests/api/test_atomic.py::test_a_conflict_is_run_again_after_a_jittered_bounded_wait_then_raised",),
    ),
    Mutant(
        "a 503 says \"try again\" as if nothing was done, not that the outcome is unknown",
        "core/errors.py",
        "    message = \"服务暂时不可用，\" + OUTCOME_UNKNOWN\n",
        "    message = \"服务暂时不可用，请稍后重试\"\n",
        ("tests/api/test_unknown_outcomes.py::test_a_debit_whose_commit_survived_a_503_is_answered_as_a_replay",),
    ),
    Mutant(
        "the published 503s do not say the outcome is unknown",
        "app/openapi.py",
        "            \"description\": \"error: \" + \", \".join(codes) + (OUTCOME_UNKNOWN_NOTE if status == 503 else \"\"),\n",
        "            \"description\": \"error: \" + \", \".join(codes),\n",
        ("tests/api/test_unknown_outcomes.py::test_the_published_contract_says_a_503_is_unknown",),
    ),
    Mutant(
        "a top-up committed but never sent waits for reconciliation instead of being sent by its retry",
        "services/accounts/funding.py",
        "            if resend_unknown:\n",
        "            if False:\n",
        ("tests/api/test_unknown_outcomes.py::test_a_top_up_committed_but_never_sent_is_sent_by_its_retry",),
    ),
    Mutant(
        "reconciliation gives up on a transfer a retry has just sent again",
        "services/accounts/funding.py",
        "    if answer.reason == \"NOT_RECEIVED\" and _last_sent(transfer) > utcnow() - timedelta(seconds=UNKNOWN_AFTER_S):\n",
        "    if False:\n",
        ("tests/api/test_unknown_outcomes.py::test_reconciliation_does_not_give_up_on_a_transfer_a_retry_just_sent_again",),
    ),
    Mutant(
        "the partner SDK calls a 5xx that outlasted its retries a known outcome",
        "partner_sdk/openbank_partner/errors.py",
        "        return self.status >= 500\n",
        "        return False\n",
        ("partner_sdk/tests/test_client.py::test_503s_that_outlast_the_retries_say_the_outcome_is_unknown",),
    ),
    # -- issue 20 partitions --
    Mutant(
        "a pooled connection whose link was cut silently waits for the whole partition (no read timeout)",
        "app/mysql_engine.py",
        "            if read_timeout_s > 0 and not isinstance(conn._reader, _ReadDeadline):\n",
        "            if False:\n",
        ("tests/resilience/test_partitions.py::test_every_answer_comes_within_the_bound_503s_too",),
        env=(("GALERA_TESTS", "1"),),
    ),
    # -- issue 21 layers --
    Mutant(
        "a handler imports a model class",
        "handlers/miniprogram/accounts.py",
        "from models.enums import AccountStatus, ApplicationStatus, RestrictionCode, TransferStatus\n",
        "from models.accounts import Account, AccountStatus, ApplicationStatus, RestrictionCode, TransferStatus  # noqa: F401\n",
        ("tests/unit/test_layers.py::test_the_layers_hold",),
    ),
    Mutant(
        "the sandbox borrows the server's code",
        "sandbox/wechatpay/core.py",
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nfrom integrations import wechatpay as _ours  # noqa: F401\n",
        ("tests/unit/test_layers.py::test_the_layers_hold",),
    ),
    # -- issue 21 money statuses --
    Mutant(
        "the card network's answer moves a transfer with no audit event",
        "services/accounts/funding.py",
        "    return (await transition(conn, MACHINE, CardTransfer, transfer.id, T.SUCCEEDED if succeeded else T.DECLINED,\n",
        "    await CardTransfer.filter(id=transfer.id).using_db(conn).update(\n"
        "        status=T.SUCCEEDED if succeeded else T.DECLINED, finished_at=utcnow(), **updates)\n"
        "    return await CardTransfer.filter(id=transfer.id).using_db(conn).first()\n"
        "    return (await transition(conn, MACHINE, CardTransfer, transfer.id, T.SUCCEEDED if succeeded else T.DECLINED,\n",
        ("tests/api/test_funding.py::test_every_move_of_a_transfer_is_an_audit_event_in_the_chain",),
    ),
    Mutant(
        "an operator releases a held transfer with no audit event",
        "services/accounts/funding.py",
        "            return (await transition(conn, MACHINE, CardTransfer, transfer.id, T.PENDING, actor=actor,\n",
        "            transfer.status, transfer.released_at = T.PENDING, utcnow()\n"
        "            await transfer.save(using_db=conn, update_fields=[\"status\", \"released_at\"])\n"
        "            return transfer\n"
        "            return (await transition(conn, MACHINE, CardTransfer, transfer.id, T.PENDING, actor=actor,\n",
        ("tests/api/test_funding.py::test_an_operators_verdicts_on_held_transfers_are_audited_as_theirs",),
    ),
    Mutant(
        "WeChat Pay's answer moves a refund with no audit event",
        "services/payments/refunds.py",
        "    await transition(conn, MACHINE, PaymentRefund, refund_row.id, to, actor=\"wechatpay\", reason=source,\n",
        "    await PaymentRefund.filter(id=refund_row.id).using_db(conn).update(**{\"finished_at\": utcnow(), **updates},\n"
        "                                                                         status=to)\n"
        "    if False:\n"
        "      await transition(conn, MACHINE, PaymentRefund, refund_row.id, to, actor=\"wechatpay\", reason=source,\n",
        ("tests/api/test_payments.py::test_a_refunds_move_is_an_audit_event_in_the_chain",),
    ),
    Mutant(
        "a payment settles arrears with no audit event",
        "services/payments/orders.py",
        "    await transition_many(conn, debits.MACHINE, PartnerDebit, settled, actor=\"wechatpay\", reason=\"arrears paid\")\n",
        "    await PartnerDebit.filter(id__in=[m.obj.id for m in settled]).using_db(conn).update(status=DebitStatus.SETTLED)\n",
        ("tests/api/test_payments.py::test_arrears_left_by_a_debit_and_settled_by_payment_are_audited_at_each_move",),
    ),
    Mutant(
        "a debit the ledger refuses is left in arrears with no audit event",
        "services/partners/debits.py",
        "            row = (await transition(conn, MACHINE, PartnerDebit, row.id, D.ARREARS,\n",
        "            row.status, row.refusal_code = D.ARREARS, exc.code\n"
        "            await row.save(using_db=conn, update_fields=[\"status\", \"refusal_code\"])\n"
        "            if False:\n"
        "              row = (await transition(conn, MACHINE, PartnerDebit, row.id, D.ARREARS,\n",
        ("tests/api/test_payments.py::test_arrears_left_by_a_debit_and_settled_by_payment_are_audited_at_each_move",),
    ),
    # -- leases --
    Mutant(
        "a lapsed lease is never free again (a dead worker's job, message or key stays stuck)",
        "services/leases.py",
        '        free = Q(**{f"{self.until}__isnull": True}) | Q(**{f"{self.until}__lt": now})\n',
        '        free = Q(**{f"{self.until}__isnull": True})\n',
        (f"{LEASES}::test_an_expired_lease_is_taken_by_another",),
    ),
    Mutant(
        "anyone may take a renewable lease another holds (a job run by two workers at once)",
        "services/leases.py",
        "            free |= Q(**{self.holder: holder})\n",
        '            free |= Q(**{f"{self.holder}__isnull": False})\n',
        (f"{LEASES}::test_a_renewable_lease_is_renewed_by_its_holder_and_by_no_one_else",),
    ),
    Mutant(
        "a lease that is not renewable is taken again by its holder (an outbox message claimed twice)",
        "services/leases.py",
        "        if self.renewable and holder is not None and self.holder is not None:\n",
        "        if holder is not None and self.holder is not None:\n",
        (f"{LEASES}::test_a_lease_that_is_not_renewable_is_refused_to_its_own_holder_too",),
    ),
    Mutant(
        "a worker that no longer holds a lease lets go of its new holder's",
        "services/leases.py",
        "        where = key if holder is None else key & Q(**{self.holder: holder})\n",
        "        where = key\n",
        (f"{LEASES}::test_only_the_holder_lets_go_when_a_holder_is_named",),
    ),
    Mutant(
        "a lease is taken by a read and then a write (two claimers both win)",
        "services/leases.py",
        "        if await self.model.filter(key & self.free(now, holder)).update(**values):\n",
        "        if await self.model.filter(key & self.free(now, holder)).exists():\n"
        "            await self.model.filter(key).update(**values)\n",
        (f"{LEASES}::test_many_concurrent_claimers_have_one_winner",),
    ),
    # -- sbbodies --
    Mutant(
        "the card network moves a transfer of zero",
        "sandbox/cardnet.py",
        "    amount_fen: int = Field(ge=1, le=MAX_AMOUNT_FEN,",
        "    amount_fen: int = Field(ge=0, le=MAX_AMOUNT_FEN,",
        ("tests/sandbox/test_cardnet_transfers.py::test_malformed_transfer_is_refused",),
    ),
    Mutant(
        "the card network reads true or 100.0 as an amount",
        "sandbox/cardnet.py",
        "    amount_fen: int = Field(ge=1, le=MAX_AMOUNT_FEN,",
        "    amount_fen: int = Field(strict=False, ge=1, le=MAX_AMOUNT_FEN,",
        ("tests/sandbox/test_cardnet_transfers.py::test_malformed_transfer_is_refused",),
    ),
    Mutant(
        "the card network takes a card number failing the Luhn check",
        "sandbox/cardnet.py",
        "    if not card_number_ok(_not_blank(value, \"card_number\").strip()):\n",
        "    if not _not_blank(value, \"card_number\").strip():\n",
        ("tests/sandbox/test_cardnet_transfers.py::test_malformed_transfer_is_refused",
         "tests/sandbox/test_cardnet_transfers.py::test_the_element_check_reads_its_body_as_before"),
    ),
    Mutant(
        "a safe-mode push needs no EncodingAESKey",
        "sandbox/push.py",
        "        if self.mode == \"safe\" and self.encoding_aes_key is None:\n",
        "        if False:\n",
        ("tests/sandbox/test_control_bodies.py::test_a_converted_body_is_refused_as_before",),
    ),
    # -- serializer --
    Mutant(
        "the account's response model shows its number unmasked",
        "handlers/miniprogram/accounts.py",
        "number_masked=mask_card(account.number)",
        "number_masked=account.number",
        ("tests/api/test_account_opening.py::test_submit_opens_the_account_once",),
    ),
    Mutant(
        "a service grows a public_* response builder beside the model again",
        "services/etc/vehicles.py",
        "async def of_user(user_id: int) -> list[Vehicle]:\n",
        "def public_vehicle(v: Vehicle) -> dict:\n"
        "    return {\"id\": v.id, \"plate_number\": v.plate_number, \"plate_color\": v.plate_color}\n\n\n"
        "async def of_user(user_id: int) -> list[Vehicle]:\n",
        ("tests/unit/test_one_serializer.py::test_no_service_builds_a_response_dict_of_its_own",),
    ),
    Mutant(
        "a handler answers a dict of its own for an operation with a response model",
        "handlers/miniprogram/vehicles.py",
        "    return answer(VehicleOut.model_validate(await vehicles.owned(request.ctx.user_id, vehicle_id)))\n",
        "    v = await vehicles.owned(request.ctx.user_id, vehicle_id)\n"
        "    from sanic.response import json\n"
        "    return json({\"id\": v.id, \"plate_number\": v.plate_number, \"plate_color\": v.plate_color,\n"
        "                 \"created_at\": v.created_at})\n",
        ("tests/unit/test_one_serializer.py::test_every_operation_with_a_response_model_answers_through_it",),
    ),
    # -- lifecycle --
    Mutant(
        "the ledger lets money out of a restricted account",
        "services/accounts/ledger.py",
        "        await check_outflow(conn, account, amount_fen)\n",
        "        pass\n",
        ("tests/api/test_account_restrictions.py::test_a_debit_during_a_loss_report_is_refused_and_books_nothing",
         "tests/api/test_account_restrictions.py::test_a_withdrawal_during_a_loss_report_is_refused_and_sends_nothing"),
    ),
    Mutant(
        "a judicial freeze of an amount holds nothing",
        "services/accounts/ledger.py",
        "    if account.balance_fen >= amount_fen and account.balance_fen - held < amount_fen:\n",
        "    if False:\n",
        ("tests/api/test_account_restrictions.py::test_a_judicial_freeze_of_300_on_500_lets_200_out_and_no_more",
         "tests/api/test_account_restrictions.py::test_a_judicial_freeze_holds_under_fifty_concurrent_debits"),
    ),
    Mutant(
        "a loss report is lifted without a face check",
        "services/accounts/restrictions.py",
        "    fv = await face.check_intent(ctx, user_id, verify_id, max_age_s=ctx.settings.face_intent_s)\n\n"
        "    async def work(conn: BaseDBAsyncClient) -> Changed:\n",
        "    fv = type(\"NoFace\", (), {\"out_seq_no\": \"none\"})\n\n"
        "    async def work(conn: BaseDBAsyncClient) -> Changed:\n",
        ("tests/api/test_account_restrictions.py::test_lifting_a_loss_report_needs_a_fresh_face_verification",),
        also=(("services/accounts/restrictions.py",
               "        await face.consume(conn, fv, purpose=f\"loss_report:{lifted.restriction.id}\")\n",
               "        pass\n"),),
    ),
    # -- statements --
    Mutant(
        "a statement is only for the account's holder",
        "services/accounts/statements.py",
        "        account = await owned(user_id, account_id, conn)\n",
        "        account = await Account.get(id=account_id, using_db=conn)\n",
        (STATEMENTS + "::test_another_users_account_answers_like_one_that_does_not_exist",
         "tests/api/test_authorization_matrix.py::test_no_route_gives_one_owner_anything_of_another"),
    ),
    Mutant(
        "statement months are China Standard Time months",
        "services/accounts/statements.py",
        "    return (datetime.combine(first, time(), CHINA_TZ), datetime.combine(_next_month(first), time(), CHINA_TZ))\n",
        "    return (datetime.combine(first, time(), timezone.utc), datetime.combine(_next_month(first), time(), timezone.utc))\n",
        (STATEMENTS + "::test_entries_at_the_edges_of_a_china_month_land_in_their_own_month",),
    ),
    Mutant(
        "a statement opens with the balance after the last entry before the month",
        "services/accounts/statements.py",
        "    opening = before.balance_after_fen if before is not None else 0\n",
        "    opening = 0\n",
        (STATEMENTS + "::test_entries_at_the_edges_of_a_china_month_land_in_their_own_month",),
    ),
    Mutant(
        "no statement for a month that has not begun",
        "services/accounts/statements.py",
        "    if first > today.replace(day=1):\n",
        "    if False:\n",
        (STATEMENTS + "::test_months_without_a_statement_are_refused_with_their_own_codes",),
    ),
    Mutant(
        "no statement for a month before the account was opened",
        "services/accounts/statements.py",
        "        if first < china_day(account.opened_at).replace(day=1):\n",
        "        if False:\n",
        (STATEMENTS + "::test_months_without_a_statement_are_refused_with_their_own_codes",),
    ),
    # -- subscribe --
    Mutant(
        "a spent subscription still lets a message through",
        "sandbox/subscribe.py",
        '"WHERE appid = ? AND openid = ? AND template_id = ? AND remaining > 0",',
        '"WHERE appid = ? AND openid = ? AND template_id = ?",',
        ("tests/api/test_outbox.py::test_a_spent_one_time_subscription_refuses_the_next_message",),
    ),
    Mutant(
        "the arrears notice is sent twice",
        "services/partners/debits.py",
        "            await notices.arrears(ctx, conn, row, binding.user_id)  # with the move into arrears: once",
        "            await notices.arrears(ctx, conn, row, binding.user_id); await notices.arrears(ctx, conn, row, binding.user_id)",
        ("tests/api/test_debit_notices.py::test_a_debit_that_becomes_arrears_sends_the_arrears_notice_once",),
    ),
    # -- boundcard --
    Mutant(
        "bound card: a new card that fails the same-name check is bound anyway",
        "services/accounts/bound_card.py",
        "    checked = await bank_card.check_card(ctx, user_id, card_number=card_number, reserved_phone=reserved_phone)\n",
        "    checked = bank_card.CheckedCard(card_number, \"I\", None, \"none\", {\"reserved_phone\": \"-\"}, 0)\n",
        (BOUND + "::test_a_card_that_fails_the_same_name_check_leaves_the_old_card_bound",),
    ),
    Mutant(
        "bound card: changed without a face check",
        "services/accounts/bound_card.py",
        "    fv = await face.check_intent(ctx, user_id, verify_id, max_age_s=ctx.settings.face_intent_s)\n",
        "    fv = type(\"NoFace\", (), {\"id\": None, \"verify_id\": \"none\"})\n",
        (BOUND + "::test_a_new_card_needs_a_fresh_face_verification",),
        also=(("services/accounts/bound_card.py",
               "        await face.consume(conn, fv, purpose=f\"bound_card:{account_id}\")\n", "        pass\n"),),
    ),
    Mutant(
        "bound card: another user's account is changed",
        "services/accounts/bound_card.py",
        "    account = await Account.get_or_none(id=account_id, user_id=user_id)\n",
        "    account = await Account.get_or_none(id=account_id)\n",
        (BOUND + "::test_another_users_account_answers_like_one_that_does_not_exist",),
    ),
    Mutant(
        "bound card: changed on a closed account",
        "services/accounts/bound_card.py",
        "    if account.status in ledger.SHUT:  # closed, or closing (its balance on its way to the card)\n",
        "    if account.status == AccountStatus.CLOSED:  # a closing account let through\n",
        (BOUND + "::test_a_closed_account_keeps_its_card",),
    ),
    Mutant(
        "bound card: changed during a loss report or a freeze",
        "services/accounts/bound_card.py",
        "    if in_force:\n        raise AccountRestricted(RESTRICTED_TEXT)\n",
        "",
        (BOUND + "::test_a_restricted_account_keeps_its_card_until_the_restriction_is_lifted",),
    ),
    Mutant(
        "bound card: changed under a pending or held transfer",
        "services/accounts/bound_card.py",
        "    await refuse_in_flight(conn, account.id)\n",
        "",
        (BOUND + "::test_a_pending_or_held_transfer_keeps_the_card_it_was_made_with",),
    ),
    Mutant(
        "bound card: changed with an expired ID card",
        "services/accounts/bound_card.py",
        "    if valid_until is not None and valid_until < china_day():\n",
        "    if False:\n",
        (BOUND + "::test_an_expired_id_card_is_renewed_before_a_new_card",),
    ),
    Mutant(
        "bound card: the card bound now costs a card-network check before it is refused",
        "services/accounts/bound_card.py",
        "    if _same_card(ctx, account, card_number):\n        raise CardAlreadyBound(field=\"card_number\")\n",
        "",
        (BOUND + "::test_the_card_bound_now_is_refused_without_an_attempt",),
    ),
    Mutant(
        "bound card: the old card's history row stays in force",
        "services/accounts/bound_card.py",
        "        replaced = await AccountBoundCard.filter(account_id=account_id, replaced_at=None).using_db(conn).update(\n"
        "            replaced_at=now)\n",
        "        replaced = 1\n",
        (BOUND + "::test_a_new_card_is_bound_and_top_ups_and_withdrawals_then_use_it",),
    ),
    Mutant(
        "bound card: the change is not audited",
        "services/accounts/bound_card.py",
        "        await audit.append(conn, actor=f\"user:{user_id}\", action=ACTION,",
        "        0 and await audit.append(conn, actor=f\"user:{user_id}\", action=ACTION,",
        (BOUND + "::test_a_new_card_is_bound_and_top_ups_and_withdrawals_then_use_it",),
    ),
    Mutant(
        "bound card: the opening's card is not in the history",
        "services/accounts/opening.py",
        "        await AccountBoundCard.create(  # the first of the account's bound cards (services.accounts.bound_card)\n",
        "        0 and await AccountBoundCard.create(  # the first of the account's bound cards\n",
        (BOUND + "::test_the_opening_card_is_the_first_of_the_history",),
    ),
    Mutant(
        "bound card: a top-up is sent to the card read before the account's lock",
        "services/accounts/funding.py",
        "        transfer, account = await atomic(lambda conn: _start(conn, account, user_id, amount_fen, direction,\n",
        "        transfer, _locked = await atomic(lambda conn: _start(conn, account, user_id, amount_fen, direction,\n",
        (BOUND + "::test_a_top_up_begun_before_the_change_pulls_from_the_card_bound_when_it_was_made",),
    ),
    Mutant(
        "bound card: the migration leaves existing accounts without a history",
        "migrations/models/21_20261207204558_bound_cards.py",
        'INSERT INTO "account_bound_cards" ("account_id", "card_enc", "card_index", "card_masked", "bound_at")\n'
        '    SELECT "id", "bound_card_enc", "bound_card_index", "bound_card_masked", "opened_at" FROM "accounts";\n',
        "",
        ("tests/unit/test_bound_card_migration.py::test_migration_21_carries_each_accounts_card_into_the_history",),
    ),
    # -- idexpiry --
    # (the copy a mutant runs in has no miniprogram_stub, so no pages: the guarding tests deliver no notice)
    Mutant(
        "idexpiry: a card valid until D is restricted on D",
        "services/accounts/id_expiry.py",
        'Subquery(Identity.filter(id_valid_until__lt=today).values("user_id"))',
        'Subquery(Identity.filter(id_valid_until__lte=today).values("user_id"))',
        (IDEXP + "::test_an_id_valid_until_d_is_not_restricted_on_d_and_is_on_d_plus_one",),
        also=(("services/accounts/id_expiry.py",
               "identity.id_valid_until is None or identity.id_valid_until >= today:",
               "identity.id_valid_until is None or identity.id_valid_until > today:"),),
    ),
    Mutant(
        "idexpiry: the worker does not run the job",
        "services/worker.py",
        '        jobs.Job("accounts.id_expiry", 600, lambda: id_expiry.run(ctx)),\n',
        '        jobs.Job("accounts.id_expiry", 600, lambda: _nothing()),\n',
        (IDEXP + "::test_the_worker_runs_it_as_a_periodic_job",),
        also=(("services/worker.py", "async def _sweep_nonces() -> dict:",
               "async def _nothing() -> dict:\n    return {}\n\n\nasync def _sweep_nonces() -> dict:"),),
    ),
    Mutant(
        "idexpiry: the job does not check the card again under the identity's lock",
        "services/accounts/id_expiry.py",
        "    if identity is None or identity.id_valid_until is None or identity.id_valid_until >= today:\n",
        "    if identity is None:\n",
        (IDEXP + "::test_a_renewal_committed_since_the_query_wins",),
    ),
    Mutant(
        "idexpiry: the restriction is set in the holder's name",
        "services/accounts/restrictions.py",
        "    return await _restrict(conn, account_id, RestrictionCode.ID_EXPIRED, by=SYSTEM, actor=SYSTEM,\n",
        "    return await _restrict(conn, account_id, RestrictionCode.ID_EXPIRED, by=HOLDER, actor=SYSTEM,\n",
        (IDEXP + "::test_an_id_valid_until_d_is_not_restricted_on_d_and_is_on_d_plus_one",),
    ),
    Mutant(
        "idexpiry: the holder is told 31 days before",
        "services/accounts/id_expiry.py",
        "NOTICE_DAYS = 30 ",
        "NOTICE_DAYS = 31 ",
        (IDEXP + "::test_the_holder_is_told_30_days_before_not_31_and_once",),
    ),
    Mutant(
        "idexpiry: the holder is told again on every run",
        "services/accounts/id_expiry.py",
        "    ).filter(\n"
        "        Q(id_expiry_notified_for__isnull=True) | ~Q(id_expiry_notified_for=F(\"id_valid_until\")),\n"
        "    ).order_by",
        "    ).order_by",
        (IDEXP + "::test_the_holder_is_told_30_days_before_not_31_and_once",),
        also=(("services/accounts/id_expiry.py",
               "    marked = await Identity.filter(id=identity_id, id_valid_until=valid_until).filter(\n"
               "        Q(id_expiry_notified_for__isnull=True) | ~Q(id_expiry_notified_for=valid_until),\n"
               "    ).using_db(conn)",
               "    marked = await Identity.filter(id=identity_id, id_valid_until=valid_until).using_db(conn)"),),
    ),
    Mutant(
        "idexpiry: the notice's mark is not conditional",
        "services/accounts/id_expiry.py",
        "    marked = await Identity.filter(id=identity_id, id_valid_until=valid_until).filter(\n"
        "        Q(id_expiry_notified_for__isnull=True) | ~Q(id_expiry_notified_for=valid_until),\n"
        "    ).using_db(conn)",
        "    marked = await Identity.filter(id=identity_id, id_valid_until=valid_until).using_db(conn)",
        (IDEXP + "::test_the_notice_is_written_once_also_when_two_workers_both_found_the_holder",),
    ),
    Mutant(
        "idexpiry: a holder without an open account is told",
        "services/accounts/id_expiry.py",
        '        user_id__in=Subquery(Account.filter(status__in=OPEN).values("user_id")),\n    ).filter(',
        "    ).filter(",
        (IDEXP + "::test_a_verified_user_without_an_account_is_not_told",),
    ),
    Mutant(
        "idexpiry: a face pass does not lift ID_EXPIRED",
        "services/identity/face.py",
        "            await _lift_id_expired(conn, user_id, fv, now)\n",
        "",
        (IDEXP + "::test_renewing_then_a_face_check_lifts_it_and_neither_alone_does",),
    ),
    Mutant(
        "idexpiry: a face pass lifts ID_EXPIRED while the card on file is expired",
        "services/identity/face.py",
        "(identity.id_valid_until is not None and identity.id_valid_until < china_day(now))",
        "False",
        (IDEXP + "::test_renewing_then_a_face_check_lifts_it_and_neither_alone_does",),
    ),
    Mutant(
        "idexpiry: the lift reaches only one of the holder's accounts",
        "services/accounts/restrictions.py",
        "    for account_id in sorted(set(account_ids)):",
        "    for account_id in sorted(set(account_ids))[:1]:",
        (IDEXP + "::test_a_renewal_lifts_it_on_every_account_of_the_holder",),
    ),
    Mutant(
        "idexpiry: a renewal may carry another name",
        "services/identity/id_card.py",
        '        raise IdentityNameChanged(field="name")\n',
        "        return\n",
        (IDEXP + "::test_a_renewal_must_be_the_same_name_and_number_and_valid",),
    ),
    Mutant(
        "idexpiry: a repeated loss report sends the notice again",
        "services/accounts/restrictions.py",
        "        if reported.changed:\n            await notices.loss_reported(",
        "        if True:\n            await notices.loss_reported(",
        ("tests/api/test_loss_report_notice.py::test_a_loss_report_sends_one_notice_and_a_repeat_none",),
    ),
    Mutant(
        "idexpiry: a loss report sends no notice",
        "services/accounts/restrictions.py",
        "            await notices.loss_reported(ctx, conn, reported.account, reported.restriction)\n",
        "            pass\n",
        ("tests/api/test_loss_report_notice.py::test_a_loss_report_sends_one_notice_and_a_repeat_none",),
    ),
    # -- closing --
    Mutant(
        'closing: a binding not unbound does not stop closing',
        'services/accounts/closing.py',
        '    if await EtcBinding.filter(account_id=account_id).exclude(status=BindingStatus.UNBOUND).using_db(conn).exists():\n',
        '    if False:\n',
        ('tests/api/test_account_closing.py::test_closing_with_a_binding_not_unbound_is_refused',),
    ),
    Mutant(
        'closing: arrears do not stop closing',
        'services/accounts/closing.py',
        '    if await EtcBinding.filter(account_id=account_id, arrears_fen__gt=0).using_db(conn).exists():\n',
        '    if False:\n',
        ('tests/api/test_account_closing.py::test_closing_with_arrears_is_refused_even_on_an_unbound_binding',),
    ),
    Mutant(
        'closing: a pending transfer does not stop closing',
        'services/accounts/closing.py',
        '    if account.pending_in_fen or await CardTransfer.filter(\n',
        '    if False and await CardTransfer.filter(\n',
        ('tests/api/test_account_closing.py::test_closing_with_a_transfer_pending_is_refused',),
    ),
    Mutant(
        'closing: a restriction does not stop closing',
        'services/accounts/closing.py',
        '        raise AccountRestricted(RESTRICTED_MESSAGES[restriction.code])\n',
        '        pass\n',
        ('tests/api/test_account_closing.py::test_closing_a_frozen_account_without_money_is_refused',),
    ),
    Mutant(
        'closing: the face verification is not used up by closing',
        'services/accounts/closing.py',
        '    await face.consume(conn, fv, purpose=f"account_close:{account_id}")\n',
        '    pass\n',
        ('tests/api/test_account_closing.py::test_a_zero_balance_closes_at_once_without_a_transfer',),
    ),
    Mutant(
        'closing: a retry under the key does not find its payout (never sent again)',
        'services/accounts/closing.py',
        '        payout = await CardTransfer.get_or_none(idempotency_id=idempotency_id)\n',
        '        payout = None\n',
        ('tests/api/test_account_closing.py::test_a_payout_committed_but_never_sent_is_sent_by_the_retry',),
    ),
    Mutant(
        'closing: money moves on a closing account',
        'services/accounts/ledger.py',
        'SHUT = frozenset({AccountStatus.CLOSING, AccountStatus.CLOSED})\n',
        'SHUT = frozenset({AccountStatus.CLOSED})\n',
        ('tests/api/test_account_closing.py::test_a_lost_answer_and_a_retry_pay_the_card_exactly_once', 'tests/api/test_account_closing.py::test_partner_debits_are_refused_on_a_closing_and_a_closed_account',),
    ),
    Mutant(
        'closing: a paid payout leaves the account closing',
        'services/accounts/funding.py',
        '        if transfer.purpose == TransferPurpose.CLOSING:  # paid: the account is closed, in this transaction\n',
        '        if False:\n',
        ('tests/api/test_account_closing.py::test_the_reconciliation_job_settles_and_closes',),
    ),
    Mutant(
        'closing: a declined payout leaves the account closing',
        'services/accounts/funding.py',
        '        if closing:  # declined: the account is open again, and its balance comes back to it\n',
        '        if False:\n',
        ('tests/api/test_account_closing.py::test_a_declined_payout_leaves_the_account_active_with_its_balance',),
    ),
    Mutant(
        'closing: no closing notice',
        'services/accounts/funding.py',
        '                await notices.account_closed(ctx, conn, closed, transfer.amount_fen)\n',
        '                pass\n',
        ('tests/api/test_account_closing.py::test_closing_pays_the_whole_balance_to_the_card_and_closes',),
    ),
    Mutant(
        'closing: a closed account still counts toward the per-person limit',
        'services/accounts/opening.py',
        '                                     status__not="closed").using_db(conn).count()\n',
        '                                     ).using_db(conn).count()\n',
        ('tests/api/test_account_closing.py::test_a_closed_account_counts_no_more_and_its_number_is_not_reused',),
    ),
    Mutant(
        "closing: a closed account's number is drawn again",
        'services/accounts/opening.py',
        '        if not await Account.filter(number=number).using_db(conn).exists():\n',
        '        if True:\n',
        ('tests/api/test_account_closing.py::test_a_closed_account_counts_no_more_and_its_number_is_not_reused',),
    ),
    Mutant(
        'closing: a debit does not read its binding again under the account lock',
        'services/partners/debits.py',
        '        if current.status == BindingStatus.UNBOUND:\n            raise VehicleNotBound()\n',
        '        if False:\n            raise VehicleNotBound()\n',
        ('tests/api/test_account_closing.py::test_a_debit_whose_binding_was_unbound_meanwhile_is_refused',),
    ),
    # -- staff --
    Mutant(
        "staff console: a form posted without its CSRF token is accepted",
        "handlers/admin/pages.py",
        '    if expected is None or not sessions.csrf_ok(expected, request.form.get("csrf_token") if request.form else None):\n',
        "    if False:\n",
        (f"{STAFF}::test_a_login_post_without_the_csrf_token_is_403",
         f"{STAFF}::test_a_logout_without_the_sessions_csrf_token_is_403"),
    ),
    Mutant(
        "staff console: a locked member is let in with the right password",
        "services/staff/login.py",
        "    if staff.locked_until is not None and staff.locked_until > now:\n",
        "    if False:\n",
        (f"{STAFF}::test_lockout_after_repeated_failures_with_backoff",),
    ),
    Mutant(
        "staff console: failures never lock",
        "services/staff/login.py",
        "    if over < 0:\n        return 0\n",
        "    if True:\n        return 0\n",
        (f"{STAFF}::test_lockout_after_repeated_failures_with_backoff",),
    ),
    Mutant(
        "staff console: a TOTP code is accepted twice",
        "services/staff/login.py",
        "        elif not await _claim_step(staff, step):\n",
        "        elif False:\n",
        (f"{STAFF}::test_a_totp_code_is_accepted_once",),
    ),
    Mutant(
        "staff console: a disabled member logs in",
        "services/staff/login.py",
        "    elif staff.disabled:\n",
        "    elif False:\n",
        (f"{STAFF}::test_a_disabled_member_is_refused_and_their_sessions_end",),
    ),
    Mutant(
        "staff console: an idle session lives on",
        "services/staff/sessions.py",
        "    if now >= row.expires_at or now - row.last_seen_at >= timedelta(seconds=settings.admin_idle_timeout_s):\n",
        "    if now >= row.expires_at:\n",
        (f"{STAFF}::test_a_session_idle_too_long_is_refused",),
    ),
    Mutant(
        "staff console: a session outlives its absolute lifetime",
        "services/staff/sessions.py",
        "    if now >= row.expires_at or now - row.last_seen_at >= timedelta(seconds=settings.admin_idle_timeout_s):\n",
        "    if now - row.last_seen_at >= timedelta(seconds=settings.admin_idle_timeout_s):\n",
        (f"{STAFF}::test_a_session_ends_at_its_absolute_lifetime_however_active",),
    ),
    Mutant(
        "staff console: the session cookie is readable by scripts",
        "handlers/admin/pages.py",
        'httponly=True, samesite="Strict"',
        'httponly=False, samesite="Strict"',
        (f"{STAFF}::test_cookies_carry_their_flags",),
    ),
    Mutant(
        "staff console: production serves it without TLS or a trusted proxy",
        "app/config.py",
        "    if s.proxies_count > 0:\n        return None\n",
        "    if True:\n        return None\n",
        (f"{STAFF}::test_production_refuses_the_console_without_tls_or_a_trusted_proxy",),
    ),
    Mutant(
        "staff console: a role acts without the permission",
        "handlers/admin/pages.py",
        "    if not permissions.allows(current.staff.role, permission):\n",
        "    if False:\n",
        (f"{STAFF}::test_an_action_without_the_role_is_403_and_audited",),
    ),
    Mutant(
        "staff console: mounted without ADMIN_ENABLED",
        "app/factory.py",
        "    if settings.admin_enabled:  # the staff console",
        "    if True:  # the staff console",
        (f"{STAFF}::test_the_console_is_404_when_not_enabled",),
    ),
    # -- proposals (maker-checker) --
    Mutant(
        "maker-checker: a proposer approves their own proposal",
        "services/staff/proposals.py",
        "    if row.proposed_by_id == me.staff.id:\n        await atomic(lambda conn: record(conn, me, client, \"proposal.own_approval_refused\"",
        "    if False:\n        await atomic(lambda conn: record(conn, me, client, \"proposal.own_approval_refused\"",
        (f"{PROPOSALS}::test_an_unfreeze_takes_effect_only_when_a_different_member_with_the_role_approves",),
    ),
    Mutant(
        "maker-checker: a role without the permission approves",
        "services/staff/proposals.py",
        "    await _allowed(me, client, action.approve)\n",
        "    pass\n",
        (f"{PROPOSALS}::test_an_unfreeze_takes_effect_only_when_a_different_member_with_the_role_approves",),
    ),
    Mutant(
        "maker-checker: a duplicate pending proposal is stored",
        "services/staff/proposals.py",
        "summary=summary[:200], reason=reason, pending_key=key,",
        "summary=summary[:200], reason=reason, pending_key=None,",
        (f"{PROPOSALS}::test_a_duplicate_pending_proposal_is_refused_and_a_rejected_one_frees_the_way",),
    ),
    Mutant(
        "maker-checker: an expired proposal is approved",
        "services/staff/proposals.py",
        "        if utcnow() >= locked.expires_at:\n",
        "        if False:\n",
        (f"{PROPOSALS}::test_a_proposal_expires",),
    ),
    Mutant(
        "maker-checker: a proposal no longer pending is approved again (racing approvals apply twice)",
        "services/staff/proposals.py",
        "    if row.status != P.PENDING:\n        raise ProposalNotPending()\n",
        "",
        (f"{PROPOSALS}::test_two_approvals_racing_apply_once",),
    ),
    Mutant(
        "maker-checker: a held transfer above the threshold is sent on one person's say",
        "services/staff/actions.py",
        "    return params[\"amount_fen\"] > settings.admin_four_eyes_above_fen\n",
        "    return False\n",
        (f"{PROPOSALS}::test_a_held_transfer_needs_four_eyes_above_the_threshold_only",),
    ),
    Mutant(
        "maker-checker: break glass leaves no audit event",
        "services/staff/proposals.py",
        "    await atomic(lambda conn: record(conn, me, client, \"staff.break_glass\"",
        "    0 and (lambda conn: record(conn, me, client, \"staff.break_glass\"",
        (f"{PROPOSALS}::test_the_command_line_proposes_and_approves_as_named_staff_and_break_glass_is_loud",),
    ),
    Mutant(
        "staff console: an unknown username never locks out (the lockout tells which usernames exist)",
        "services/staff/login.py",
        "    if wait:\n        raise LoginLocked(wait)\n    raise LoginFailed()\n\n\nasync def _claim_step",
        "    raise LoginFailed()\n\n\nasync def _claim_step",
        (f"{STAFF}::test_an_unknown_username_locks_out_exactly_as_a_real_one",),
    ),
    Mutant(
        "console queue: a refused debit gets a second verdict",
        "services/staff/queues.py",
        "changed = await PartnerDebit.filter(id=debit_id, review_verdict=None)",
        "changed = await PartnerDebit.filter(id=debit_id)",
        (f"{CONSOLE_MC}::test_a_refused_debit_gets_one_verdict",),
    ),
    Mutant(
        "maker-checker: a rotated partner secret is stored on the proposal",
        "services/staff/actions.py",
        'return Applied({"app_id": made.partner.app_id, "previous_valid_until"',
        'return Applied({"secret": made.secret, "app_id": made.partner.app_id, "previous_valid_until"',
        (f"{PROPOSALS}::test_a_partner_secret_rotation_shows_the_secret_once_and_stores_none",),
    ),
    # -- opspages --
    Mutant(
        "console dashboard: a day of openings counted in UTC, not China's",
        "services/staff/dashboard.py",
        "return \"date(opened_at, '+8 hours')\"",
        'return "date(opened_at)"',
        ("tests/api/test_console_dashboard.py::test_the_charts_count_each_day_of_the_last_fourteen",),
    ),
    Mutant(
        "console payments: a bill mismatch resolved twice",
        "services/staff/payments.py",
        "await BillMismatch.filter(id=mismatch_id, resolved_at__isnull=True).using_db(conn).update(",
        "await BillMismatch.filter(id=mismatch_id).using_db(conn).update(",
        ("tests/api/test_console_payments.py::test_a_mismatch_is_resolved_once_with_a_note",),
    ),
    Mutant(
        "console payments: a resolution note shorter than 4 characters",
        "services/staff/payments.py",
        "NOTE_MIN, NOTE_MAX = 4, 500",
        "NOTE_MIN, NOTE_MAX = 1, 500",
        ("tests/api/test_console_payments.py::test_bad_resolutions_are_refused",),
    ),
    Mutant(
        "console payments: checking a day again deletes the resolved mismatches",
        "services/payments/bills.py",
        "await BillMismatch.filter(bill_date=day, resolved_at__isnull=True).using_db(conn).delete()",
        "await BillMismatch.filter(bill_date=day).using_db(conn).delete()",
        ("tests/api/test_console_payments.py::test_a_mismatch_is_resolved_once_with_a_note",),
    ),
    Mutant(
        "console payments: resolving without payments.resolve",
        "handlers/admin/payments.py",
        'current = await staff_for(request, "payments.resolve")',
        'current = await staff_for(request, "payments.view")',
        ("tests/api/test_console_payments.py::test_roles_without_the_permissions_are_refused_and_audited",),
    ),
    Mutant(
        "console payments: a refund's reason shown unmasked",
        "services/staff/payments.py",
        'redact(r.reason or "")',
        '(r.reason or "")',
        ("tests/api/test_console_payments.py::test_orders_and_refunds_are_listed_in_yuan_and_filtered",),
    ),
    Mutant(
        "console audit: the audit page without audit.view",
        "handlers/admin/audit.py",
        'current = await staff_for(request, "audit.view")  # permission first',
        'current = await staff_for(request, "dashboard.view")  # permission first',
        ("tests/api/test_console_audit.py::test_a_viewer_is_refused_and_the_refusal_audited",),
    ),
    Mutant(
        "console audit: the chain checked from the console without an audit event",
        "services/staff/audit_log.py",
        '    await atomic(lambda conn: sessions.record(conn, current, client, "staff.audit_verified"',
        '    False and (lambda conn: sessions.record(conn, current, client, "staff.audit_verified"',
        ("tests/api/test_console_audit.py::test_verify_from_the_console_passes_and_is_audited",),
    ),
    Mutant(
        "console audit: the actor filter ignored",
        "services/staff/audit_log.py",
        "        query = query.filter(actor=f.actor)\n",
        "        pass\n",
        ("tests/api/test_console_audit.py::test_the_chain_is_searched_by_actor_action_entity_and_days",),
    ),
    # -- customers --
    Mutant(
        "customers: a reveal beyond the daily allowance",
        "services/staff/pii.py",
        "count__lt=allowance)",
        "count__lte=allowance)",
        (f"{CUSTOMERS}::test_the_allowance_is_enforced_and_shared_by_the_members_sessions",
         f"{CUSTOMERS}::test_concurrent_reveals_at_the_allowance_edge_let_exactly_one_through"),
    ),
    Mutant(
        "customers: a reveal without a reason",
        "services/staff/pii.py",
        '    return fields.reason(reason, what="查看理由", error=BadReveal)\n',
        '    return (reason or "").strip()\n',
        (f"{CUSTOMERS}::test_a_reveal_needs_a_reason_and_the_csrf_token",),
    ),
    Mutant(
        "customers: a viewer reveals a full value",
        "services/staff/permissions.py",
        '"customers.reveal": frozenset({OPERATOR, RISK, ADMIN}),',
        '"customers.reveal": EVERYONE,',
        (f"{CUSTOMERS}::test_a_viewer_can_view_but_not_reveal",),
    ),
    Mutant(
        "customers: the search shows the phone in full",
        "services/staff/customers.py",
        "    return mask_phone(ctx.pii.decrypt(user.phone_enc, purpose=PHONE_PURPOSE)) if user.phone_enc else None\n",
        "    return ctx.pii.decrypt(user.phone_enc, purpose=PHONE_PURPOSE) if user.phone_enc else None\n",
        (f"{CUSTOMERS}::test_search_by_account_number_phone_id_number_and_last_4",),
    ),
    Mutant(
        "customers: the search's audit event keeps the phone in clear",
        "services/staff/customers.py",
        "    if kind == \"phone\":\n        return mask_phone(value)\n",
        "    if kind == \"phone\":\n        return value\n",
        (f"{CUSTOMERS}::test_search_by_account_number_phone_id_number_and_last_4",),
    ),
    Mutant(
        "maker-checker: an approved reveal beyond the allowance is good more than once",
        "services/staff/pii.py",
        "        if await StaffRevealGrant.filter(id=grant.id, used_at=None).using_db(conn).update(used_at=utcnow()):",
        "        if await StaffRevealGrant.filter(id=grant.id).using_db(conn).update(used_at=utcnow()):",
        ("tests/api/test_console_customers.py::test_a_reveal_beyond_the_allowance_needs_a_second_member_and_is_good_once",),
        also=(("services/staff/pii.py", "staff_id=staff_id, user_id=user_id, field=field, used_at=None)",
               "staff_id=staff_id, user_id=user_id, field=field)"),),
    ),
    # -- partrisk --
    Mutant(
        "console partners: another partner's delivery is redelivered",
        "services/partners/console.py",
        '    if message is None or message.payload.get("partner_id") != partner.id:\n',
        "    if message is None:\n",
        ("tests/api/test_console_partners.py::test_another_partners_delivery_is_404",),
    ),
    Mutant(
        "console partners: a delivery still pending is queued twice",
        "services/partners/console.py",
        "    if message.status == OutboxStatus.PENDING:\n",
        "    if False:\n",
        ("tests/api/test_console_partners.py::test_a_failed_delivery_redelivered_reaches_the_partner",),
    ),
    Mutant(
        "console partners: a redelivery is a new event, not the same notification",
        "services/partners/notify.py",
        '"event": message.payload["event"], "redelivery_of"',
        '"event": _event(message.payload["event"]["type"], message.payload["event"]["data"]), "redelivery_of"',
        ("tests/api/test_console_partners.py::test_a_failed_delivery_redelivered_reaches_the_partner",),
    ),
    Mutant(
        "console partners: a staff member's change is audited as the operator",
        "services/partners/registry.py",
        "    if by is not None:\n",
        "    if False:\n",
        ("tests/api/test_console_partners.py::test_setting_the_callback_url_and_disabling_are_the_members_audit_events",),
    ),
    Mutant(
        "console risk: a staff member's list change is audited as the operator",
        "services/risk/lists.py",
        "    if by is not None:\n",
        "    if False:\n",
        ("tests/api/test_console_risk.py::test_an_analyst_puts_and_removes_list_values_as_themselves",),
    ),
    Mutant(
        "console risk: a pasted rule set of any size is parsed",
        "services/risk/console.py",
        "    if len(text.encode()) > MAX_RULESET_BYTES:\n",
        "    if False:\n",
        ("tests/api/test_console_risk.py::test_bad_json_an_invalid_rule_set_and_a_huge_one_are_400",),
    ),
    # -- consolefuzz --
    Mutant(
        "staff console: a logged-in page's POST is taken without the session's CSRF token (staff_for)",
        "handlers/admin/pages.py",
        "        check_csrf(request, current.session.csrf_token)\n",
        "        pass\n",
        ("tests/e2e/test_fuzz_console.py",),
        env=(("CONSOLE_FUZZ_SECONDS", "10"),),
    ),
    Mutant(
        "staff console: a logout is taken without the session's CSRF token",
        "handlers/admin/auth.py",
        "    check_csrf(request, current.session.csrf_token)\n",
        "    pass\n",
        ("tests/e2e/test_fuzz_console.py",),
        env=(("CONSOLE_FUZZ_SECONDS", "10"),),
    ),
    Mutant(
        "staff console: an id from the path beyond any row's is looked up (and audited: a 500)",
        "handlers/admin/pages.py",
        "    if any(isinstance(v, int) and not 1 <= v <= MAX_ID for v in request.match_info.values()):\n",
        "    if False:\n",
        ("tests/e2e/test_fuzz_console.py",),
        env=(("CONSOLE_FUZZ_SECONDS", "10"),),
    ),
    Mutant(
        "staff console: an over-long username at login is the API's JSON error, not the login page",
        "services/staff/login.py",
        "if 0 < len(username) <= USERNAME_MAX else None\n",
        "if username else None\n",
        ("tests/e2e/test_fuzz_console.py",),
        env=(("CONSOLE_FUZZ_SECONDS", "10"),),
    ),
)


def run(mutant: Mutant, workdir: Path) -> tuple[bool, str]:
    """Apply ``mutant`` to a fresh copy under ``workdir``; True when a guarding test fails (killed)."""
    copy = workdir / "repo"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
    for path, original, mutated in ((mutant.path, mutant.original, mutant.mutated), *mutant.also):
        target = copy / path
        source = target.read_text(encoding="utf-8")
        if source.count(original) != 1:
            return False, f"STALE: the original snippet occurs {source.count(original)} times in {path}"
        target.write_text(source.replace(original, mutated), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(copy)
    env.update(mutant.env)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutant.tests],
        cwd=copy, env=env, capture_output=True, text=True, timeout=600,
    )
    tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or [""]
    # exit 1: tests ran and one failed (killed); 0: all passed (survived); anything else is an error
    if result.returncode not in (0, 1):
        return False, f"ERROR (pytest exit {result.returncode}): {tail[0]}"
    return result.returncode == 1, tail[0]


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or any(a in m.name for a in argv)]
    survivors = 0
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        for mutant in chosen:
            killed, detail = run(mutant, Path(tmp))
            survivors += not killed
            print(f"{'killed  ' if killed else 'SURVIVED'}  {mutant.name}  ({detail})", flush=True)
    print(f"{len(chosen) - survivors}/{len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
