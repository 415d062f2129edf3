/*
 * Operations: preparing one (tmo_prep_*: the kind and its arguments, see op_kinds.h), its
 * settings, and what may be asked of an op: the public getters and the tmo__op_* questions
 * other files ask (internal.h).
 */
#include <errno.h>
#include <string.h>

#include "op_private.h"
#include "tmo/group.h"

void tmo__op_clear(struct tmo_op *op)
{
	void *data = op->data;
	uint8_t generation = op->_generation;

	memset(op, 0, sizeof(*op));
	op->data = data;
	op->_generation = generation;
}

bool tmo__op_active(const struct tmo_op *op)
{
	return op->_flags & TMO__F_ACTIVE;
}

bool tmo__op_undecided(const struct tmo_op *op)
{
	return op_undecided(op);
}

bool tmo__op_reported(const struct tmo_op *op)
{
	return op->_flags & TMO__F_REPORTED;
}

bool tmo__op_prepared(const struct tmo_op *op)
{
	return op->_flags & TMO__F_PREPARED;
}

bool tmo__op_linked_deadline_passed(const struct tmo_op *op, int64_t now)
{
	return (op->_flags & TMO__F_LINKED) &&
	       !(op->_flags & (TMO__F_CANCEL | TMO__F_EXPIRED | TMO__F_REPORTED)) &&
	       op->_deadline <= now;
}

void tmo__op_set_in_done_set(struct tmo_op *op, bool in)
{
	if (in)
		op->_flags |= TMO__F_IN_DONE_SET;
	else
		op->_flags &= (uint16_t)~TMO__F_IN_DONE_SET;
}

/*
 * (Re)initialises every private field of an inactive op for one kind of request. Refuses an
 * op that is active: wiping one the kernel or the loop still holds would lose its request and
 * corrupt the loop's timer wheel and queues, and its callback would fire twice.
 */
static int prep(struct tmo_op *op, enum tmo__kind kind, int fd)
{
	if (!op)
		return -EINVAL;
	if (op->_flags & (TMO__F_ACTIVE | TMO__F_IN_DONE_SET))
		return -EBUSY;
	tmo__op_clear(op);
	op->_kind = (uint8_t)kind;
	op->_fd = fd;
	op->_deadline = TMO_NEVER_NS;
	op->_flags = TMO__F_PREPARED;
	if (kind_keeps(kind, TMO__KEEP_IOWQ)) /* openat: blocking from the start, for good */
		op->_user_flags = TMO_OP_BLOCKING;
	return 0;
}

int tmo_prep_nop(struct tmo_op *op)
{
	return prep(op, TMO__KIND_NOP, 0);
}

int tmo_prep_sleep(struct tmo_op *op, tmo_deadline wake_at)
{
	int64_t when = tmo__deadline_in(wake_at);

	if (when < 0)
		return -EINVAL;
	int ret = prep(op, TMO__KIND_SLEEP, 0);
	if (!ret)
		op->_args.sleep.wake_at = when;
	return ret;
}

static int prep_io(struct tmo_op *op, enum tmo__kind kind, int fd, const void *buf,
		   uint32_t len, uint64_t offset, int msg_flags)
{
	int ret = prep(op, kind, fd);

	if (!ret) {
		op->_args.io.buf = (void *)buf;
		op->_args.io.len = len;
		op->_args.io.offset = offset;
		op->_args.io.msg_flags = msg_flags;
	}
	return ret;
}

int tmo_prep_read(struct tmo_op *op, int fd, void *buf, uint32_t len, uint64_t offset)
{
	return prep_io(op, TMO__KIND_READ, fd, buf, len, offset, 0);
}

int tmo_prep_write(struct tmo_op *op, int fd, const void *buf, uint32_t len, uint64_t offset)
{
	return prep_io(op, TMO__KIND_WRITE, fd, buf, len, offset, 0);
}

int tmo_prep_recv(struct tmo_op *op, int fd, void *buf, uint32_t len, int msg_flags)
{
	return prep_io(op, TMO__KIND_RECV, fd, buf, len, 0, msg_flags);
}

int tmo_prep_send(struct tmo_op *op, int fd, const void *buf, uint32_t len, int msg_flags)
{
	return prep_io(op, TMO__KIND_SEND, fd, buf, len, 0, msg_flags | MSG_NOSIGNAL);
}

int tmo_prep_accept(struct tmo_op *op, int fd, struct sockaddr *addr, socklen_t *addrlen,
		    int flags)
{
	int ret = prep(op, TMO__KIND_ACCEPT, fd);

	if (!ret) {
		op->_args.accept.addr = addr;
		op->_args.accept.addrlen = addrlen;
		op->_args.accept.flags = flags;
	}
	return ret;
}

int tmo_prep_connect(struct tmo_op *op, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	int ret = prep(op, TMO__KIND_CONNECT, fd);

	if (!ret) {
		op->_args.connect.addr = addr;
		op->_args.connect.addrlen = addrlen;
	}
	return ret;
}

int tmo_prep_poll(struct tmo_op *op, int fd, uint32_t events)
{
	int ret = prep(op, TMO__KIND_POLL, fd);

	if (!ret)
		op->_args.poll_events = events;
	return ret;
}

int tmo_prep_openat(struct tmo_op *op, int dirfd, const char *path, int flags, mode_t mode)
{
	int ret = prep(op, TMO__KIND_OPENAT, dirfd);

	if (!ret) {
		op->_args.open.path = path;
		op->_args.open.flags = flags;
		op->_args.open.mode = mode;
	}
	return ret;
}

int tmo_prep_group(struct tmo_op *op, struct tmo_group *group)
{
	int ret = prep(op, TMO__KIND_GROUP, 0);

	if (!ret)
		op->_args.group = group;
	return ret;
}

static int check_settable(const struct tmo_op *op)
{
	if (!op || !(op->_flags & TMO__F_PREPARED) || op->_kind == TMO__KIND_NONE ||
	    op->_kind >= TMO__KIND_COUNT_)
		return -EINVAL;
	if (op->_flags & TMO__F_ACTIVE)
		return -EBUSY;
	return 0;
}

int tmo_op_set_flags(struct tmo_op *op, unsigned flags)
{
	int ret = check_settable(op);

	if (ret)
		return ret;
	if (flags & ~(unsigned)TMO_OP_BLOCKING)
		return -EINVAL;
	/* A kind that may block in io-wq (openat) is always blocking: the flag stays. */
	if (kind_keeps(op->_kind, TMO__KEEP_IOWQ))
		flags |= TMO_OP_BLOCKING;
	op->_user_flags = (uint8_t)flags;
	return 0;
}

int tmo_op_set_release(struct tmo_op *op, tmo_op_release_cb release)
{
	int ret = check_settable(op);

	if (ret)
		return ret;
	op->_release = release;
	return 0;
}

bool tmo_op_busy(const struct tmo_op *op)
{
	return op && (op->_flags & TMO__F_ACTIVE);
}

tmo_deadline tmo_op_deadline(const struct tmo_op *op)
{
	return tmo__deadline_out(op && (op->_flags & TMO__F_ACTIVE) ? op->_deadline : TMO_NEVER_NS);
}

int32_t tmo_op_result(const struct tmo_op *op)
{
	return op ? op->_res : 0;
}

enum tmo_cause tmo_op_cause(const struct tmo_op *op)
{
	return op ? (enum tmo_cause)op->_cause : TMO_CAUSE_NONE;
}

struct tmo_scope *tmo_op_cause_scope(const struct tmo_op *op)
{
	return op && op->_cause == TMO_CAUSE_SCOPE ? op->_cause_obj : NULL;
}

struct tmo_group *tmo_op_cause_group(const struct tmo_op *op)
{
	return op && op->_cause == TMO_CAUSE_GROUP ? op->_cause_obj : NULL;
}
