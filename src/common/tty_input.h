/* tty_input.h - reading a line, or a secret without echo, from stdin (the command-line
 * tools' password prompts)
 *
 * SECURITY: while echo is off, SIGINT, SIGTERM and SIGHUP put the terminal back before
 * the process dies of them; callers wipe the buffers they passed.
 */
#ifndef ALKAID_TTY_INPUT_H
#define ALKAID_TTY_INPUT_H

#include <stdbool.h>
#include <stddef.h>

/* One line of stdin into buf (NUL-terminated, without its LF or CRLF). 0, or -1 at end
 * of input before anything was read, on a read error, or if the line did not fit (then
 * *too_long_r, when given, is set and the rest of the line is read and dropped). */
int tty_read_line(char *buf, size_t size, size_t *len_r, bool *too_long_r);
/* Prints text on stderr and reads a line from the terminal on stdin without echo, as
 * tty_read_line(). */
int tty_prompt_secret(const char *text, char *buf, size_t size, size_t *len_r, bool *too_long_r);

#endif
