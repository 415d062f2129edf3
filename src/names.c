/*
 * Names for the enums that reach logs, so that a log reads "gap", not "cause 3". Each function
 * returns a static lowercase string, and "unknown" (never NULL) for a value out of range, so
 * that printing a corrupt or future value cannot crash the caller.
 */
#include "tmo/tmo.h"

#define NAME_OF(table, value)                                                                 \
	((unsigned)(value) < sizeof(table) / sizeof((table)[0]) && (table)[(unsigned)(value)]  \
		 ? (table)[(unsigned)(value)]                                                  \
		 : "unknown")

const char *tmo_cause_name(enum tmo_cause cause)
{
	static const char *const names[] = {
		[TMO_CAUSE_NONE] = "none",   [TMO_CAUSE_OWN] = "own",
		[TMO_CAUSE_SCOPE] = "scope", [TMO_CAUSE_GROUP] = "group",
		[TMO_CAUSE_CANCEL] = "cancel",
	};
	return NAME_OF(names, cause);
}

const char *tmo_limit_name(enum tmo_limit limit)
{
	static const char *const names[] = {
		[TMO_LIMIT_NONE] = "none", [TMO_LIMIT_GAP] = "gap",
		[TMO_LIMIT_DEADLINE] = "deadline", [TMO_LIMIT_RATE] = "rate",
		[TMO_LIMIT_SCOPE] = "scope",
	};
	return NAME_OF(names, limit);
}

const char *tmo_group_reason_name(enum tmo_group_reason reason)
{
	static const char *const names[] = {
		[TMO_GROUP_RUNNING] = "running",         [TMO_GROUP_MET] = "met",
		[TMO_GROUP_UNREACHABLE] = "unreachable", [TMO_GROUP_TIMED_OUT] = "timed_out",
		[TMO_GROUP_CANCELLED] = "cancelled",
	};
	return NAME_OF(names, reason);
}

const char *tmo_group_mode_name(enum tmo_group_mode mode)
{
	static const char *const names[] = {
		[TMO_GROUP_ALL] = "all",
		[TMO_GROUP_FIRST_DONE] = "first_done",
		[TMO_GROUP_FIRST_SUCCESS] = "first_success",
		[TMO_GROUP_FIRST_ERROR] = "first_error",
		[TMO_GROUP_QUORUM] = "quorum",
	};
	return NAME_OF(names, mode);
}

const char *tmo_group_policy_name(enum tmo_group_policy policy)
{
	static const char *const names[] = {
		[TMO_GROUP_CANCEL_PENDING] = "cancel_pending",
		[TMO_GROUP_LEAVE_PENDING] = "leave_pending",
	};
	return NAME_OF(names, policy);
}

const char *tmo_overrun_name(enum tmo_overrun overrun)
{
	static const char *const names[] = {
		[TMO_OVERRUN_ABANDON] = "abandon",
		[TMO_OVERRUN_INTERRUPT] = "interrupt",
		[TMO_OVERRUN_KILL] = "kill",
	};
	return NAME_OF(names, overrun);
}

const char *tmo_reader_event_name(enum tmo_reader_event_kind kind)
{
	static const char *const names[] = {
		[TMO_READER_DATA] = "data",
		[TMO_READER_TIMEOUT] = "timeout",
		[TMO_READER_END] = "end",
	};
	return NAME_OF(names, kind);
}

const char *tmo_stall_source_name(enum tmo_stall_source source)
{
	static const char *const names[] = {
		[TMO_STALL_OP] = "op",
		[TMO_STALL_TICK] = "tick",
		[TMO_STALL_GROUP] = "group",
		[TMO_STALL_JOB] = "job",
	};
	return NAME_OF(names, source);
}
