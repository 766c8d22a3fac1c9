/* log.h - the "[IP] [Thread] [Date] [Action]" logs an administrator reads
 *
 *   SYSTEM [00000000] Fri, 19 Jan 2001 11:36:54 +0100 SMTP Service started
 *   192.0.2.7 [0000A3F1] Sat, 21 Nov 2026 10:02:11 +0000 <<< EHLO client.example
 *
 * One file per channel per day: log/<channel>/YYYYMMDD.log (smtp, pop3, imap, control,
 * error). The protocol channels can be switched off in [Logging]; the error channel is
 * always on. Protocol traffic is logged with log_proto(): "<<<" client to server, ">>>"
 * server to client.
 *
 * SECURITY: logged text is sanitised (control characters and non-ASCII escaped, long
 * lines cut) so a client cannot forge log lines. Callers never pass passwords or AUTH
 * payloads: sessions log "PASS ****" (and the like) in their place.
 */
#ifndef ALKAID_LOG_H
#define ALKAID_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_channel { LOG_SMTP = 0, LOG_POP3, LOG_IMAP, LOG_CONTROL, LOG_ERROR, LOG_NCHANNELS };

#define LOG_MAX_ACTION 1024 /* longest action text kept; the rest is cut with "..." */

/* Sets the directory logs go to (created as needed). Safe to call again on reload. */
int log_init(const char *log_dir);
void log_set_enabled(enum log_channel ch, bool enabled);
/* Also copy every line written to the error channel to stderr (foreground mode). */
void log_set_stderr(bool on);
/* Closes the files (at exit), writing out what is buffered. */
void log_shutdown(void);
/* Writes out the lines buffered on every channel (done every 100 ms and at exit). */
void log_flush(void);
/* From now on, lines are gathered and written in batches by a flusher thread (services
 * call it once they run in the background); before, each line is written at once. */
void log_start_batching(void);

/* A line on channel ch. ip NULL means the line is about the service itself: "SYSTEM"
 * and thread [00000000]. */
void log_line(enum log_channel ch, const char *ip, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error: always written to the error channel (and to ch when ch is enabled). */
void log_error(enum log_channel ch, const char *ip, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Protocol traffic: dir is "<<<" or ">>>"; text[0..len) may hold several CRLF lines,
 * each logged as its own line. */
void log_proto(enum log_channel ch, const char *ip, const char *dir, const char *text, size_t len);
bool log_enabled(enum log_channel ch);
/* A client line that is not a known command: only its length and first four octets are
 * logged ("<<< [unrecognized, 23 octets] dXNl..."), because such lines are often
 * credentials a client sent out of turn (pipelined AUTH responses, a mistyped PASS). */
void log_proto_unrecognized(enum log_channel ch, const char *ip, const char *line, size_t len);

/* Formats the date as used in log lines and Received: headers:
 * "Sat, 21 Nov 2026 10:02:11 +0000". buf needs 40 bytes. */
void log_format_date(char *buf, size_t size, long long unix_time);

#endif
