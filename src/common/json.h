/* json.h - a small JSON parser (RFC 8259) into a tree of values
 *
 * json_parse() takes one JSON text and returns its value: objects keep their members in
 * order (duplicate keys are kept; json_get() finds the first), strings are decoded to
 * UTF-8 (\uXXXX escapes and surrogate pairs included) and may contain NUL (str_len),
 * numbers are kept as a double and, when they are integers that fit, as an int64_t too.
 *
 * SECURITY: the input may come from the network. Nesting is capped at JSON_MAX_DEPTH
 * before anything deeper is allocated, the parser never reads past len, invalid UTF-8
 * escapes (lone surrogates, \u0000 is allowed) are refused, and an error never aborts.
 */
#ifndef ALKAID_JSON_H
#define ALKAID_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

#define JSON_MAX_DEPTH 64

enum json_type {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json {
    enum json_type type;
    bool boolean;
    bool is_int;     /* a number without fraction or exponent that fits in int64 */
    int64_t integer; /* when is_int */
    double number;   /* every number */
    char *str;       /* JSON_STRING: NUL-terminated, str_len bytes */
    size_t str_len;
    size_t n; /* JSON_ARRAY / JSON_OBJECT: the number of items */
    struct json **items;
    char **keys; /* JSON_OBJECT: the member names, parallel to items */
};

/* Parses text[0..len) (whitespace around the value is allowed, nothing else). NULL on
 * error with *error_r set to a static description including the offset. */
struct json *json_parse(const char *text, size_t len, const char **error_r);
void json_free(struct json **v);

/* The first member of obj called key; NULL when obj is not an object or has none. */
const struct json *json_get(const struct json *obj, const char *key);
/* Follows dotted member names: json_path(v, "smtp.bytes_in"). */
const struct json *json_path(const struct json *v, const char *path);
/* Typed accessors with a default for a missing value or another type. */
const char *json_str(const struct json *v, const char *def);
int64_t json_int(const struct json *v, int64_t def);
bool json_bool(const struct json *v, bool def);

/* Appends v to out as compact JSON (strings escaped; non-ASCII bytes copied as they are). */
void json_write(struct sbuf *out, const struct json *v);

#endif
