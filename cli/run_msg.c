/*
 * tmo run's messages: one line on stderr named by the program (GNU's error()), and GNU's
 * quote(). Every run_*.c file says what it has to say through these.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

/* The name in every message: "tmo run", or argv[0] when invoked as `timeout` (cli_run). */
const char *run_prog = "tmo run";

void msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n = snprintf(line, sizeof(line), "%s: ", run_prog);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	if (len < sizeof(line) - 1)
		line[len++] = '\n';
	else
		line[sizeof(line) - 2] = '\n', len = sizeof(line) - 1;
	/* One write: async-signal-safe (the child uses it) and not interleaved. */
	const char *p = line;
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		len -= (size_t)w;
	}
}

/* GNU's quote() in the C locale: 'text', with backslash escapes for ' \ and non-printables. */
const char *quote(const char *text, char *buf, size_t size)
{
	size_t n = 0;
	buf[n++] = '\'';
	for (const unsigned char *p = (const unsigned char *)text; *p && n + 6 < size; p++) {
		static const char esc_from[] = "\a\b\f\n\r\t\v", esc_to[] = "abfnrtv";
		const char *e = *p ? strchr(esc_from, *p) : NULL;
		if (*p == '\'' || *p == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)*p;
		} else if (e) {
			buf[n++] = '\\';
			buf[n++] = esc_to[e - esc_from];
		} else if (*p < 0x20 || *p == 0x7f) {
			n += (size_t)snprintf(buf + n, size - n, "\\%03o", *p);
		} else {
			buf[n++] = (char)*p;
		}
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return buf;
}
