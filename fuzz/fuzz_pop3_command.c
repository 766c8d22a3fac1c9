/* fuzz_pop3_command.c - libFuzzer harness for the POP3 command-line parser
 *
 * Each input is one command line (without CRLF): pop3_parse_command() on an exactly
 * sized copy, then what the session does with the result: the table lookup, the
 * argument count check and the message-number parser on every argument. The parsed
 * command's invariants are checked. The dot-stuffing writer is fed the same bytes as a
 * message, to check that it never emits a bare CR or LF.
 *
 * Run: cmake -DALKAID_FUZZ=ON -DCMAKE_C_COMPILER=clang ...; build/fuzz/fuzz_pop3_command
 *
 * SECURITY: ASan (with -fsanitize=fuzzer,address) sees any read past the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_dotstuff.h"
#include "pop3_parse.h"
#include "pop3_session.h"

struct outcheck {
    char last;
    size_t len;
};

static void out_check(void *ctx, const char *data, size_t len)
{
    struct outcheck *o = ctx;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == '\n' && o->last != '\r') abort();
        if (o->last == '\r' && c != '\n') abort();
        o->last = c;
    }
    o->len += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    if (line == NULL) return 0;
    memcpy(line, data, size);

    static struct pop3_command cmd;
    enum pop3_parse_result r = pop3_parse_command(line, size, &cmd);
    if (r == POP3_PARSE_OK) {
        size_t klen = strlen(cmd.keyword);
        if (klen < 1 || klen > POP3_MAX_KEYWORD) abort();
        if (strlen(cmd.rest) >= size && size > 0) abort();
        const struct pop3_cmd_def *def = pop3_command_find(cmd.keyword);
        if (def != NULL && strcmp(def->name, cmd.keyword) != 0) abort();
        for (size_t i = 0; i < cmd.nargs && i < POP3_MAX_ARGS; i++) {
            if (cmd.args[i][0] == '\0' || strchr(cmd.args[i], ' ') != NULL) abort();
            unsigned long n;
            (void)pop3_parse_number(cmd.args[i], &n);
        }
    } else if (pop3_parse_error(r)[0] != '-') {
        abort();
    }

    struct outcheck o = {0, 0};
    struct pop3_dotstuff d;
    pop3_dotstuff_init(&d, size % 3 == 0 ? -1 : (long)(size % 5), out_check, &o);
    for (size_t i = 0; i < size; i++) {
        if (pop3_dotstuff_feed(&d, line + i, 1)) break;
    }
    pop3_dotstuff_finish(&d);
    if (o.last != '\n') abort();

    free(line);
    return 0;
}
