/* dns.c - DNS lookups through c-ares: raw records with TTLs, and mail routing (MX)
 *
 * dns_query() validates the name, looks in the cache, borrows a c-ares channel from the
 * resolver's pool (one is made when none is free), sends one query (no search list,
 * recursion desired) and polls the channel's sockets until the answer, a failure or the
 * deadline (Timeout x Tries x servers). The raw answer is parsed here, not by c-ares's
 * ares_parse_*_reply(), so that every record keeps its TTL. dns_resolve_mx() builds a
 * mail route from MX and address lookups (RFC 5321 5.1, RFC 7505). docs/dnsq.md is the
 * administrator's view.
 *
 * An MX target written as an IP address (a misconfiguration: RFC 5321 asks for a host
 * name) is not used: that host gets addr_status DNS_BADNAME and no query is sent for it.
 *
 * SECURITY: answers come from the network. The parser checks every length against the
 * buffer before it reads, names are expanded by ares_expand_name() (which bounds
 * compression pointers, so a loop ends in an error), and rdata must be exactly as long
 * as its contents. c-ares matches the answer's ID and question to the query. Names are
 * checked before anything is sent; the cache and the MX host list are bounded.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sbuf.h"
#include "xalloc.h"

#define DNS_NAME_MAX       253   /* bytes of a name without its trailing dot */
#define DNS_LABEL_MAX      63    /* bytes of one label */
#define DNS_PACKET_MAX     65535 /* the largest answer (TCP) */
#define DNS_HEADER_LEN     12
#define DNS_CLASS_IN       1
#define DNS_SERVERS_MAX    16    /* servers in one list */
#define DNS_CACHE_MAX      10000 /* answers kept */
#define DNS_CACHE_BUCKETS  4096
#define DNS_CACHE_TTL_MAX  3600 /* seconds a positive answer is kept at most */
#define DNS_CACHE_NEG_TTL  60   /* seconds NXDOMAIN and NODATA are kept */
#define DNS_MX_HOSTS_MAX   16   /* MX hosts looked at, by preference */
#define DNS_HOST_ADDRS_MAX 32   /* addresses kept per host */
#define DNS_DEADLINE_SLACK 250  /* ms past Timeout x Tries x servers before we give up */

/* ---- the resolver ------------------------------------------------------------------ */

struct channel {
    ares_channel ch;
    int first; /* the server asked first */
    struct channel *next;
};

struct cache_entry {
    struct cache_entry *hnext;         /* bucket chain */
    struct cache_entry *older, *newer; /* insertion order, for eviction */
    char *key;                         /* "<type>/<lower-case name>" */
    int64_t stored_ms, expires_ms;
    struct dns_answer ans;
};

struct dns_resolver {
    struct ares_addr_port_node *servers; /* nservers of them (0: c-ares's default) */
    char *servers_text;
    int timeout_ms, tries, nservers;
    pthread_mutex_t pool_lock;
    struct channel **idle; /* per rotation: idle[i]'s channels ask server i first */
    pthread_mutex_t cache_lock;
    struct cache_entry *buckets[DNS_CACHE_BUCKETS];
    struct cache_entry *oldest, *newest;
    size_t ncached;
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status = ARES_SUCCESS;

static void ares_lib_init(void)
{
    ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One server "IP", "IP:PORT", "[IPv6]", "[IPv6]:PORT" or a bare IPv6 address. */
static int parse_server(const char *s, size_t n, struct ares_addr_port_node *node)
{
    const char *end = s + n, *host = s, *port = NULL;
    size_t hlen = n;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL) return -1;
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < end) {
            if (close[1] != ':') return -1;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)) == NULL) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        }
    }
    char ip[64];
    if (hlen == 0 || hlen >= sizeof(ip)) return -1;
    memcpy(ip, host, hlen);
    ip[hlen] = '\0';
    memset(node, 0, sizeof(*node));
    if (inet_pton(AF_INET, ip, &node->addr.addr4) == 1)
        node->family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &node->addr.addr6) == 1)
        node->family = AF_INET6;
    else
        return -1;
    long p = 53;
    if (port) {
        char buf[8];
        size_t plen = (size_t)(end - port);
        if (plen == 0 || plen >= sizeof(buf)) return -1;
        memcpy(buf, port, plen);
        buf[plen] = '\0';
        char *stop;
        p = strtol(buf, &stop, 10);
        if (*stop != '\0' || p < 1 || p > 65535) return -1;
    }
    node->udp_port = node->tcp_port = (int)p;
    return 0;
}

static void append_server_text(struct sbuf *sb, const struct ares_addr_port_node *node)
{
    char ip[INET6_ADDRSTRLEN];
    int port = node->udp_port ? node->udp_port : 53;
    if (sb->len) sbuf_appends(sb, ", ");
    if (node->family == AF_INET6) {
        inet_ntop(AF_INET6, &node->addr.addr6, ip, sizeof(ip));
        sbuf_printf(sb, "[%s]:%d", ip, port);
    } else {
        inet_ntop(AF_INET, &node->addr.addr4, ip, sizeof(ip));
        sbuf_printf(sb, "%s:%d", ip, port);
    }
}

/* Parses "IP[:PORT], ..." (commas or spaces between) into r->servers. */
static int parse_servers(struct dns_resolver *r, const char *list, const char **error_r)
{
    static __thread char why[160];
    struct ares_addr_port_node *nodes = NULL;
    struct sbuf text = SBUF_INIT(SBUF_NO_MAX);
    int n = 0;
    for (const char *p = list; *p;) {
        p += strspn(p, " ,\t");
        size_t len = strcspn(p, " ,\t");
        if (len == 0) break;
        if (n == DNS_SERVERS_MAX) {
            snprintf(why, sizeof(why), "more than %d DNS servers", DNS_SERVERS_MAX);
            goto fail;
        }
        nodes = xreallocarray(nodes, (size_t)n + 1, sizeof(*nodes));
        if (parse_server(p, len, &nodes[n]) < 0) {
            snprintf(why, sizeof(why), "not an IP[:PORT]: %.*s", (int)(len > 80 ? 80 : len), p);
            goto fail;
        }
        append_server_text(&text, &nodes[n]);
        n++;
        p += len;
    }
    for (int i = 0; i + 1 < n; i++)
        nodes[i].next = &nodes[i + 1];
    r->servers = nodes;
    r->nservers = n;
    r->servers_text = n ? sbuf_steal(&text) : NULL;
    sbuf_free(&text);
    return 0;
fail:
    free(nodes);
    sbuf_free(&text);
    *error_r = why;
    return -1;
}

/* A channel asking the servers in order from server first (wrapping around). Answers
 * with SERVFAIL or REFUSED are handed to us (ARES_FLAG_NOCHECKRESP): c-ares 1.18 loses
 * their status when it moves on, so ask() moves to the next server itself. */
static ares_channel channel_open(struct dns_resolver *r, int first, int *status_r)
{
    struct ares_options opts;
    memset(&opts, 0, sizeof(opts));
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP;
    opts.timeout = r->timeout_ms;
    opts.tries = r->tries;
    ares_channel ch;
    int st = ares_init_options(&ch, &opts, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (st == ARES_SUCCESS && r->nservers > 0) {
        struct ares_addr_port_node *list = xcalloc((size_t)r->nservers, sizeof(*list));
        for (int i = 0; i < r->nservers; i++) {
            list[i] = r->servers[(first + i) % r->nservers];
            list[i].next = i + 1 < r->nservers ? &list[i + 1] : NULL;
        }
        st = ares_set_servers_ports(ch, list);
        free(list);
        if (st != ARES_SUCCESS) ares_destroy(ch);
    }
    *status_r = st;
    return st == ARES_SUCCESS ? ch : NULL;
}

/* The system's servers (from a channel made without a list) into r->servers. */
static void system_servers(struct dns_resolver *r, ares_channel ch)
{
    struct ares_addr_port_node *list = NULL;
    struct sbuf text = SBUF_INIT(SBUF_NO_MAX);
    int n = 0;
    if (ares_get_servers_ports(ch, &list) == ARES_SUCCESS) {
        for (struct ares_addr_port_node *p = list; p && n < DNS_SERVERS_MAX; p = p->next) {
            r->servers = xreallocarray(r->servers, (size_t)n + 1, sizeof(*r->servers));
            r->servers[n++] = *p;
            append_server_text(&text, p);
        }
        ares_free_data(list);
    }
    r->nservers = n;
    if (text.len == 0) sbuf_appends(&text, "the system's resolvers");
    r->servers_text = sbuf_steal(&text);
    sbuf_free(&text);
}

struct dns_resolver *dns_resolver_new(const char *servers, int timeout_ms, int tries,
                                      const char **error_r)
{
    pthread_once(&ares_once, ares_lib_init);
    if (ares_init_status != ARES_SUCCESS) {
        *error_r = ares_strerror(ares_init_status);
        return NULL;
    }
    struct dns_resolver *r = xcalloc(1, sizeof(*r));
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    r->tries = tries > 0 ? tries : 1;
    if (servers && parse_servers(r, servers, error_r) < 0) {
        free(r);
        return NULL;
    }
    int st;
    ares_channel ch = channel_open(r, 0, &st);
    if (ch == NULL) {
        *error_r = ares_strerror(st);
        free(r->servers);
        free(r->servers_text);
        free(r);
        return NULL;
    }
    if (r->nservers == 0) system_servers(r, ch);
    pthread_mutex_init(&r->pool_lock, NULL);
    pthread_mutex_init(&r->cache_lock, NULL);
    r->idle = xcalloc(r->nservers > 0 ? (size_t)r->nservers : 1, sizeof(*r->idle));
    r->idle[0] = xcalloc(1, sizeof(**r->idle));
    r->idle[0]->ch = ch;
    return r;
}

void dns_resolver_free(struct dns_resolver **rp)
{
    struct dns_resolver *r = *rp;
    if (r == NULL) return;
    dns_cache_clear(r);
    for (int i = 0; i < (r->nservers > 0 ? r->nservers : 1); i++) {
        while (r->idle[i]) {
            struct channel *c = r->idle[i];
            r->idle[i] = c->next;
            ares_destroy(c->ch);
            free(c);
        }
    }
    free(r->idle);
    pthread_mutex_destroy(&r->pool_lock);
    pthread_mutex_destroy(&r->cache_lock);
    free(r->servers);
    free(r->servers_text);
    free(r);
    *rp = NULL;
}

const char *dns_resolver_servers(const struct dns_resolver *r)
{
    return r->servers_text;
}

static struct channel *channel_borrow(struct dns_resolver *r, int first, int *status_r)
{
    pthread_mutex_lock(&r->pool_lock);
    struct channel *c = r->idle[first];
    if (c) r->idle[first] = c->next;
    pthread_mutex_unlock(&r->pool_lock);
    if (c) return c;
    ares_channel ch = channel_open(r, first, status_r);
    if (ch == NULL) return NULL;
    c = xcalloc(1, sizeof(*c));
    c->ch = ch;
    c->first = first;
    return c;
}

static void channel_return(struct dns_resolver *r, struct channel *c)
{
    pthread_mutex_lock(&r->pool_lock);
    c->next = r->idle[c->first];
    r->idle[c->first] = c;
    pthread_mutex_unlock(&r->pool_lock);
}

/* ---- names and types ---------------------------------------------------------------- */

static const struct {
    enum dns_type type;
    const char *name;
} type_names[] = {
    {DNS_T_A, "A"},   {DNS_T_NS, "NS"},   {DNS_T_CNAME, "CNAME"}, {DNS_T_PTR, "PTR"},
    {DNS_T_MX, "MX"}, {DNS_T_TXT, "TXT"}, {DNS_T_AAAA, "AAAA"},
};

#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

int dns_type_from_name(const char *name)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (strcasecmp(type_names[i].name, name) == 0) return (int)type_names[i].type;
    return -1;
}

const char *dns_type_name(enum dns_type type)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (type_names[i].type == type) return type_names[i].name;
    return "TYPE?";
}

static bool known_type(unsigned type)
{
    for (size_t i = 0; i < NTYPES; i++)
        if ((unsigned)type_names[i].type == type) return true;
    return false;
}

const char *dns_status_name(enum dns_status status)
{
    switch (status) {
    case DNS_OK: return "OK";
    case DNS_NXDOMAIN: return "NXDOMAIN";
    case DNS_NODATA: return "NODATA";
    case DNS_TEMPFAIL: return "TEMPFAIL";
    case DNS_BADNAME: return "BADNAME";
    }
    return "?";
}

static bool label_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool dns_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.') len--;
    if (len == 0 || len > DNS_NAME_MAX) return false;
    size_t label = 0;
    bool all_digits = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            all_digits = true;
            continue;
        }
        if (!label_char(c) || ++label > DNS_LABEL_MAX) return false;
        if (c < '0' || c > '9') all_digits = false;
    }
    return label > 0 && !all_digits;
}

int dns_reverse_name(const char *ip, char *buf, size_t size)
{
    unsigned char a[16];
    struct sbuf sb = SBUF_INIT(SBUF_NO_MAX);
    if (inet_pton(AF_INET, ip, a) == 1) {
        sbuf_printf(&sb, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 15; i >= 0; i--)
            sbuf_printf(&sb, "%c.%c.", hex[a[i] & 15], hex[a[i] >> 4]);
        sbuf_appends(&sb, "ip6.arpa");
    } else {
        return -1;
    }
    int ret = -1;
    if (sb.len < size) {
        memcpy(buf, sb.data, sb.len + 1);
        ret = 0;
    }
    sbuf_free(&sb);
    return ret;
}

/* ---- answers ------------------------------------------------------------------------ */

static void rr_clear(struct dns_rr *rr)
{
    free(rr->name);
    free(rr->target);
    free(rr->text);
    memset(rr, 0, sizeof(*rr));
}

void dns_answer_clear(struct dns_answer *ans)
{
    for (size_t i = 0; i < ans->n; i++)
        rr_clear(&ans->rrs[i]);
    free(ans->rrs);
    ans->rrs = NULL;
    ans->n = 0;
}

static void answer_copy(struct dns_answer *dst, const struct dns_answer *src)
{
    *dst = *src;
    dst->rrs = src->n ? xcalloc(src->n, sizeof(*dst->rrs)) : NULL;
    for (size_t i = 0; i < src->n; i++) {
        const struct dns_rr *s = &src->rrs[i];
        struct dns_rr *d = &dst->rrs[i];
        *d = *s;
        d->name = xstrdup(s->name);
        d->target = s->target ? xstrdup(s->target) : NULL;
        d->text = s->text ? xmemdup(s->text, s->text_len + 1) : NULL;
    }
}

static const char *rcode_name(unsigned rcode)
{
    static const char *names[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                  "NXDOMAIN", "NOTIMP",  "REFUSED"};
    return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode] : "RCODE?";
}

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct parser {
    const unsigned char *buf;
    size_t len, pos;
    const char *why;
};

/* A (possibly compressed) name at ps->pos; moves past it. NULL if malformed. */
static char *take_name(struct parser *ps)
{
    if (ps->pos >= ps->len) {
        ps->why = "truncated name";
        return NULL;
    }
    char *s = NULL;
    long enclen = 0;
    if (ares_expand_name(ps->buf + ps->pos, ps->buf, (int)ps->len, &s, &enclen) != ARES_SUCCESS ||
        enclen <= 0 || (size_t)enclen > ps->len - ps->pos) {
        ps->why = "bad name (compression loop or past the end)";
        return NULL;
    }
    ps->pos += (size_t)enclen;
    char *copy = xstrdup(s);
    ares_free_string(s);
    return copy;
}

static bool need(struct parser *ps, size_t n, const char *why)
{
    if (ps->len - ps->pos >= n) return true;
    ps->why = why;
    return false;
}

/* A name filling the rest of rdata (which ends at end). */
static char *rdata_name(struct parser *ps, size_t end)
{
    char *name = take_name(ps);
    if (name && ps->pos != end) {
        ps->why = "name does not fill the record data";
        xfree(name);
    }
    return name;
}

static int rdata_txt(struct parser *ps, size_t end, struct dns_rr *rr)
{
    if (ps->pos == end) {
        ps->why = "empty TXT record";
        return -1;
    }
    struct sbuf text = SBUF_INIT(SBUF_NO_MAX);
    while (ps->pos < end) {
        size_t n = ps->buf[ps->pos++];
        if (n > end - ps->pos) {
            ps->why = "TXT string past the record data";
            sbuf_free(&text);
            return -1;
        }
        sbuf_append(&text, ps->buf + ps->pos, n);
        ps->pos += n;
    }
    rr->text_len = text.len;
    rr->text = text.len ? sbuf_steal(&text) : xstrdup("");
    sbuf_free(&text);
    return 0;
}

static int parse_rdata(struct parser *ps, size_t rdlen, struct dns_rr *rr)
{
    size_t end = ps->pos + rdlen;
    const unsigned char *p = ps->buf + ps->pos;
    switch (rr->type) {
    case DNS_T_A:
    case DNS_T_AAAA: {
        size_t want = rr->type == DNS_T_A ? 4 : 16;
        if (rdlen != want) {
            ps->why = "address of the wrong length";
            return -1;
        }
        inet_ntop(rr->type == DNS_T_A ? AF_INET : AF_INET6, p, rr->addr, sizeof(rr->addr));
        ps->pos = end;
        return 0;
    }
    case DNS_T_MX:
        if (rdlen < 3) {
            ps->why = "MX record too short";
            return -1;
        }
        rr->pref = (uint16_t)get16(p);
        ps->pos += 2;
        /* fall through */
    case DNS_T_NS:
    case DNS_T_PTR:
    case DNS_T_CNAME: rr->target = rdata_name(ps, end); return rr->target ? 0 : -1;
    case DNS_T_TXT: return rdata_txt(ps, end, rr);
    }
    return -1;
}

/* One resource record. *keep_r: whether it is of a class and type we keep. */
static int parse_rr(struct parser *ps, struct dns_rr *rr, bool *keep_r)
{
    memset(rr, 0, sizeof(*rr));
    *keep_r = false;
    char *name = take_name(ps);
    if (name == NULL) return -1;
    if (!need(ps, 10, "truncated record")) {
        free(name);
        return -1;
    }
    const unsigned char *p = ps->buf + ps->pos;
    unsigned type = get16(p), class = get16(p + 2);
    uint32_t ttl = get32(p + 4);
    size_t rdlen = get16(p + 8);
    ps->pos += 10;
    if (!need(ps, rdlen, "record data past the end")) {
        free(name);
        return -1;
    }
    if (class != DNS_CLASS_IN || !known_type(type)) {
        ps->pos += rdlen;
        free(name);
        return 0;
    }
    rr->name = name;
    rr->type = (enum dns_type)type;
    rr->ttl = ttl > 0x7fffffffu ? 0 : ttl; /* RFC 2181 8: a TTL with the top bit set is 0 */
    if (parse_rdata(ps, rdlen, rr) < 0) {
        rr_clear(rr);
        return -1;
    }
    *keep_r = true;
    return 0;
}

static void parse_fail(struct dns_answer *ans, const char *why)
{
    dns_answer_clear(ans);
    ans->status = DNS_TEMPFAIL;
    snprintf(ans->error, sizeof(ans->error), "malformed answer: %s", why);
}

int dns_parse_answer(const unsigned char *buf, size_t len, enum dns_type qtype,
                     struct dns_answer *ans_r)
{
    memset(ans_r, 0, sizeof(*ans_r));
    struct parser ps = {.buf = buf, .len = len, .pos = DNS_HEADER_LEN};
    if (len < DNS_HEADER_LEN || len > DNS_PACKET_MAX) {
        parse_fail(ans_r, len < DNS_HEADER_LEN ? "shorter than a header" : "too long");
        return -1;
    }
    if (!(buf[2] & 0x80)) {
        parse_fail(ans_r, "not a response");
        return -1;
    }
    unsigned rcode = buf[3] & 0x0f, qdcount = get16(buf + 4), ancount = get16(buf + 6);
    if (qdcount != 1) {
        parse_fail(ans_r, "not one question");
        return -1;
    }
    char *qname = take_name(&ps);
    if (qname == NULL || !need(&ps, 4, "truncated question")) {
        free(qname);
        parse_fail(ans_r, ps.why);
        return -1;
    }
    free(qname);
    ps.pos += 4;
    bool found = false;
    for (unsigned i = 0; i < ancount; i++) {
        struct dns_rr rr;
        bool keep;
        if (parse_rr(&ps, &rr, &keep) < 0) {
            parse_fail(ans_r, ps.why);
            return -1;
        }
        if (!keep) continue;
        if (rr.type == qtype) found = true;
        ans_r->rrs = xreallocarray(ans_r->rrs, ans_r->n + 1, sizeof(*ans_r->rrs));
        ans_r->rrs[ans_r->n++] = rr;
    }
    if (rcode == 0)
        ans_r->status = found ? DNS_OK : DNS_NODATA;
    else if (rcode == 3)
        ans_r->status = DNS_NXDOMAIN;
    else {
        ans_r->status = DNS_TEMPFAIL;
        snprintf(ans_r->error, sizeof(ans_r->error), "%s", rcode_name(rcode));
    }
    return 0;
}

/* ---- the cache ---------------------------------------------------------------------- */

static char *cache_key(const char *name, enum dns_type type)
{
    char *key = xasprintf("%d/%s", (int)type, name);
    for (char *p = key; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return key;
}

static size_t cache_hash(const char *key)
{
    size_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = h * 33 + *p;
    return h % DNS_CACHE_BUCKETS;
}

/* Unlinks e from its bucket and the age list and frees it. Lock held. */
static void cache_drop(struct dns_resolver *r, struct cache_entry *e)
{
    struct cache_entry **pp = &r->buckets[cache_hash(e->key)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->older)
        e->older->newer = e->newer;
    else
        r->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        r->newest = e->older;
    r->ncached--;
    free(e->key);
    dns_answer_clear(&e->ans);
    free(e);
}

void dns_cache_clear(struct dns_resolver *r)
{
    pthread_mutex_lock(&r->cache_lock);
    while (r->oldest)
        cache_drop(r, r->oldest);
    pthread_mutex_unlock(&r->cache_lock);
}

static bool cache_get(struct dns_resolver *r, const char *key, struct dns_answer *ans_r)
{
    bool hit = false;
    int64_t now = now_ms();
    pthread_mutex_lock(&r->cache_lock);
    struct cache_entry *e = r->buckets[cache_hash(key)];
    while (e && strcmp(e->key, key) != 0)
        e = e->hnext;
    if (e && e->expires_ms <= now) {
        cache_drop(r, e);
        e = NULL;
    }
    if (e) {
        answer_copy(ans_r, &e->ans);
        uint32_t age = (uint32_t)((now - e->stored_ms) / 1000);
        for (size_t i = 0; i < ans_r->n; i++)
            ans_r->rrs[i].ttl = ans_r->rrs[i].ttl > age ? ans_r->rrs[i].ttl - age : 0;
        hit = true;
    }
    pthread_mutex_unlock(&r->cache_lock);
    return hit;
}

/* Seconds an answer may be kept: 0 for never. */
static uint32_t cache_ttl(const struct dns_answer *ans)
{
    if (ans->status == DNS_NXDOMAIN || ans->status == DNS_NODATA) return DNS_CACHE_NEG_TTL;
    if (ans->status != DNS_OK) return 0;
    uint32_t ttl = DNS_CACHE_TTL_MAX;
    for (size_t i = 0; i < ans->n; i++)
        if (ans->rrs[i].ttl < ttl) ttl = ans->rrs[i].ttl;
    return ttl;
}

static void cache_put(struct dns_resolver *r, const char *key, const struct dns_answer *ans)
{
    uint32_t ttl = cache_ttl(ans);
    if (ttl == 0) return;
    int64_t now = now_ms();
    struct cache_entry *e = xcalloc(1, sizeof(*e));
    e->key = xstrdup(key);
    e->stored_ms = now;
    e->expires_ms = now + (int64_t)ttl * 1000;
    answer_copy(&e->ans, ans);
    pthread_mutex_lock(&r->cache_lock);
    struct cache_entry *old = r->buckets[cache_hash(key)];
    while (old && strcmp(old->key, key) != 0)
        old = old->hnext;
    if (old) cache_drop(r, old);
    while (r->ncached >= DNS_CACHE_MAX)
        cache_drop(r, r->oldest);
    size_t h = cache_hash(key);
    e->hnext = r->buckets[h];
    r->buckets[h] = e;
    e->older = r->newest;
    if (r->newest)
        r->newest->newer = e;
    else
        r->oldest = e;
    r->newest = e;
    r->ncached++;
    pthread_mutex_unlock(&r->cache_lock);
}

/* ---- one query ---------------------------------------------------------------------- */

struct pending {
    bool done;
    int status;
    unsigned char *abuf;
    size_t alen;
};

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct pending *p = arg;
    p->done = true;
    p->status = status;
    if (abuf && alen > 0) {
        p->abuf = xmemdup(abuf, (size_t)alen);
        p->alen = (size_t)alen;
    }
}

/* Runs the channel until the query is done or the deadline passes (then cancels it). */
static void wait_answer(ares_channel ch, struct pending *p, int64_t deadline)
{
    while (!p->done) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        /* c-ares's ARES_GETSOCK_WRITABLE() shifts a signed 1 into the sign bit */
        uint32_t bits = (uint32_t)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
        nfds_t n = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = (short)((bits & (1u << i) ? POLLIN : 0) |
                               (bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
            if (ev) pfd[n++] = (struct pollfd){.fd = socks[i], .events = ev};
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            ares_cancel(ch); /* calls on_answer with ARES_ECANCELLED */
            break;
        }
        struct timeval tv, *tvp = ares_timeout(ch, NULL, &tv);
        if (tvp) {
            int64_t t = (int64_t)tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000;
            if (t < left) left = t;
        }
        int rc = poll(pfd, n, (int)left);
        if (rc < 0 && errno != EINTR) {
            ares_cancel(ch);
            break;
        }
        if (rc <= 0) {
            ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
            continue;
        }
        for (nfds_t i = 0; i < n && !p->done; i++) {
            if (pfd[i].revents == 0) continue;
            bool rd = pfd[i].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL);
            bool wr = pfd[i].revents & POLLOUT;
            ares_process_fd(ch, rd ? pfd[i].fd : ARES_SOCKET_BAD, wr ? pfd[i].fd : ARES_SOCKET_BAD);
        }
    }
    if (!p->done) { /* ares_cancel() did not call back: should not happen */
        p->done = true;
        p->status = ARES_ECANCELLED;
    }
}

static void failure_text(struct dns_resolver *r, int status, struct dns_answer *ans)
{
    const char *s = r->servers_text;
    switch (status) {
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:
        snprintf(ans->error, sizeof(ans->error), "timeout (no answer from %s)", s);
        break;
    case ARES_ECONNREFUSED:
        snprintf(ans->error, sizeof(ans->error), "connection refused by %s", s);
        break;
    case ARES_ESERVFAIL: snprintf(ans->error, sizeof(ans->error), "SERVFAIL from %s", s); break;
    case ARES_EREFUSED: snprintf(ans->error, sizeof(ans->error), "REFUSED by %s", s); break;
    case ARES_ENOTIMP: snprintf(ans->error, sizeof(ans->error), "NOTIMP from %s", s); break;
    case ARES_EFORMERR: snprintf(ans->error, sizeof(ans->error), "FORMERR from %s", s); break;
    default: snprintf(ans->error, sizeof(ans->error), "%s (%s)", ares_strerror(status), s); break;
    }
}

/* One query on a pooled channel that asks server first first; the raw answer or a
 * failure. */
static void ask_once(struct dns_resolver *r, int first, const char *name, enum dns_type type,
                     int64_t deadline, struct pending *p)
{
    int st = ARES_SUCCESS;
    struct channel *c = channel_borrow(r, first, &st);
    if (c == NULL) {
        p->done = true;
        p->status = st;
        return;
    }
    ares_query(c->ch, name, DNS_CLASS_IN, (int)type, on_answer, p);
    wait_answer(c->ch, p, deadline);
    channel_return(r, c);
}

/* Whether an answer is a refusal another server might not give (SERVFAIL, NOTIMP,
 * REFUSED). */
static bool answer_refused(const struct pending *p)
{
    unsigned rcode = p->alen >= DNS_HEADER_LEN ? p->abuf[3] & 0x0f : 0;
    return rcode == 2 || rcode == 4 || rcode == 5;
}

/* Asks the servers (moving to the next one on SERVFAIL or REFUSED while there is time)
 * and fills ans from the answer or the failure. */
static void ask(struct dns_resolver *r, const char *name, enum dns_type type,
                struct dns_answer *ans)
{
    int nservers = r->nservers > 0 ? r->nservers : 1;
    int64_t deadline = now_ms() + (int64_t)r->timeout_ms * r->tries * nservers + DNS_DEADLINE_SLACK;
    struct pending p = {0};
    for (int first = 0; first < nservers; first++) {
        if (first > 0) {
            if (!answer_refused(&p) || now_ms() >= deadline) break;
            free(p.abuf);
            p = (struct pending){0};
        }
        ask_once(r, first, name, type, deadline, &p);
    }
    if (p.abuf) {
        dns_parse_answer(p.abuf, p.alen, type, ans);
        free(p.abuf);
        if (ans->status == DNS_TEMPFAIL && strncmp(ans->error, "malformed", 9) != 0) {
            char rc[sizeof(ans->error)];
            memcpy(rc, ans->error, sizeof(rc));
            snprintf(ans->error, sizeof(ans->error), "%.16s from %s", rc, r->servers_text);
        }
        return;
    }
    ans->status = DNS_TEMPFAIL;
    failure_text(r, p.status, ans);
}

enum dns_status dns_query(struct dns_resolver *r, const char *name, enum dns_type type,
                          struct dns_answer *ans_r, bool *from_cache)
{
    memset(ans_r, 0, sizeof(*ans_r));
    if (from_cache) *from_cache = false;
    if (!dns_name_valid(name)) {
        ans_r->status = DNS_BADNAME;
        snprintf(ans_r->error, sizeof(ans_r->error), "not a valid domain name");
        return DNS_BADNAME;
    }
    char *qname = xstrdup(name);
    size_t len = strlen(qname);
    if (qname[len - 1] == '.') qname[len - 1] = '\0';
    char *key = cache_key(qname, type);
    if (cache_get(r, key, ans_r)) {
        if (from_cache) *from_cache = true;
    } else {
        ask(r, qname, type, ans_r);
        cache_put(r, key, ans_r);
    }
    free(key);
    free(qname);
    return ans_r->status;
}

/* ---- mail routing ------------------------------------------------------------------- */

static void host_add_addr(struct dns_mx_host *h, const char *addr)
{
    if (h->naddrs >= DNS_HOST_ADDRS_MAX) return;
    for (size_t i = 0; i < h->naddrs; i++)
        if (strcmp(h->addrs[i], addr) == 0) return;
    h->addrs = xreallocarray(h->addrs, h->naddrs + 1, sizeof(*h->addrs));
    h->addrs[h->naddrs++] = xstrdup(addr);
}

/* AAAA then A for h->name. error (size bytes) gets the reason of a failure. */
static void host_lookup(struct dns_resolver *r, struct dns_mx_host *h, char *error, size_t size)
{
    static const enum dns_type order[2] = {DNS_T_AAAA, DNS_T_A};
    enum dns_status st[2];
    for (int i = 0; i < 2; i++) {
        struct dns_answer ans;
        st[i] = dns_query(r, h->name, order[i], &ans, NULL);
        for (size_t j = 0; j < ans.n; j++)
            if (ans.rrs[j].type == order[i]) host_add_addr(h, ans.rrs[j].addr);
        if (st[i] == DNS_TEMPFAIL || st[i] == DNS_BADNAME)
            snprintf(error, size, "%s %s: %s", h->name, dns_type_name(order[i]), ans.error);
        dns_answer_clear(&ans);
        if (st[i] == DNS_BADNAME || st[i] == DNS_NXDOMAIN) {
            st[1] = st[0];
            break; /* the name itself is wrong or missing: no need to ask for A */
        }
    }
    if (h->naddrs > 0)
        h->addr_status = DNS_OK;
    else if (st[0] == DNS_TEMPFAIL || st[1] == DNS_TEMPFAIL)
        h->addr_status = DNS_TEMPFAIL;
    else if (st[0] == DNS_BADNAME)
        h->addr_status = DNS_BADNAME;
    else if (st[0] == DNS_NXDOMAIN && st[1] == DNS_NXDOMAIN)
        h->addr_status = DNS_NXDOMAIN;
    else
        h->addr_status = DNS_NODATA;
}

static bool is_ip(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* "[192.0.2.7]" or "[IPv6:2001:db8::1]" -> the address in out; -1 if not a literal. */
static int parse_literal(const char *s, char *out, size_t size)
{
    size_t len = strlen(s);
    if (len < 3 || s[0] != '[' || s[len - 1] != ']') return -1;
    char inner[64];
    if (len - 2 >= sizeof(inner)) return -1;
    memcpy(inner, s + 1, len - 2);
    inner[len - 2] = '\0';
    unsigned char a[16];
    int family = AF_INET;
    const char *ip = inner;
    if (strncasecmp(inner, "IPv6:", 5) == 0) {
        family = AF_INET6;
        ip += 5;
    }
    if (inet_pton(family, ip, a) != 1) return -1;
    inet_ntop(family, a, out, (socklen_t)size);
    return 0;
}

static struct dns_mx_host *mx_add_host(struct dns_mx *mx, const char *name, uint16_t pref)
{
    mx->hosts = xreallocarray(mx->hosts, mx->nhosts + 1, sizeof(*mx->hosts));
    struct dns_mx_host *h = &mx->hosts[mx->nhosts++];
    memset(h, 0, sizeof(*h));
    h->name = xstrdup(name);
    h->pref = pref;
    h->addr_status = DNS_NODATA;
    return h;
}

/* A domain literal as a route of one host; DNS_BADNAME if it is not a valid one. */
static enum dns_status literal_route(const char *domain, struct dns_mx *mx)
{
    char addr[INET6_ADDRSTRLEN];
    if (parse_literal(domain, addr, sizeof(addr)) < 0) {
        mx->status = DNS_BADNAME;
        snprintf(mx->error, sizeof(mx->error), "not a valid address literal");
        return mx->status;
    }
    struct dns_mx_host *h = mx_add_host(mx, domain, 0);
    host_add_addr(h, addr);
    h->addr_status = DNS_OK;
    mx->status = DNS_OK;
    return DNS_OK;
}

enum dns_status dns_resolve_host(struct dns_resolver *r, const char *host, struct dns_mx *mx_r)
{
    memset(mx_r, 0, sizeof(*mx_r));
    if (host[0] == '[') return literal_route(host, mx_r);
    if (is_ip(host)) {
        char addr[INET6_ADDRSTRLEN];
        unsigned char a[16];
        int family = strchr(host, ':') ? AF_INET6 : AF_INET;
        inet_pton(family, host, a);
        inet_ntop(family, a, addr, sizeof(addr));
        struct dns_mx_host *h = mx_add_host(mx_r, host, 0);
        host_add_addr(h, addr);
        h->addr_status = mx_r->status = DNS_OK;
        return DNS_OK;
    }
    struct dns_mx_host *h = mx_add_host(mx_r, host, 0);
    host_lookup(r, h, mx_r->error, sizeof(mx_r->error));
    mx_r->status = h->addr_status;
    return mx_r->status;
}

struct mx_pick {
    const char *name;
    uint16_t pref;
    uint32_t shuffle;
};

static int pick_cmp(const void *a, const void *b)
{
    const struct mx_pick *x = a, *y = b;
    if (x->pref != y->pref) return x->pref < y->pref ? -1 : 1;
    return x->shuffle < y->shuffle ? -1 : x->shuffle > y->shuffle;
}

/* The MX records of ans, without null targets and duplicates, sorted by preference with
 * equal preferences shuffled. Sets *nnull to the count of null targets. */
static struct mx_pick *mx_picks(const struct dns_answer *ans, size_t *n_r, size_t *nnull)
{
    struct mx_pick *picks = xcalloc(ans->n + 1, sizeof(*picks));
    size_t n = 0;
    *nnull = 0;
    for (size_t i = 0; i < ans->n; i++) {
        const struct dns_rr *rr = &ans->rrs[i];
        if (rr->type != DNS_T_MX) continue;
        if (rr->target[0] == '\0') {
            (*nnull)++;
            continue;
        }
        size_t j = 0;
        while (j < n && strcasecmp(picks[j].name, rr->target) != 0)
            j++;
        if (j < n) {
            if (rr->pref < picks[j].pref) picks[j].pref = rr->pref;
            continue;
        }
        picks[n++] = (struct mx_pick){rr->target, rr->pref, arc4random()};
    }
    qsort(picks, n, sizeof(*picks), pick_cmp);
    *n_r = n;
    return picks;
}

/* No MX: the domain itself is the host (RFC 5321 5.1). */
static enum dns_status implicit_route(struct dns_resolver *r, const char *domain, struct dns_mx *mx)
{
    struct dns_mx_host *h = mx_add_host(mx, domain, 0);
    host_lookup(r, h, mx->error, sizeof(mx->error));
    if (h->addr_status == DNS_OK || h->addr_status == DNS_TEMPFAIL) {
        mx->implicit = true;
        mx->status = h->addr_status;
        return mx->status;
    }
    dns_mx_clear(mx);
    mx->status = DNS_NODATA;
    snprintf(mx->error, sizeof(mx->error), "%s has neither MX nor address records", domain);
    return mx->status;
}

static enum dns_status mx_route(struct dns_resolver *r, const struct dns_answer *ans,
                                struct dns_mx *mx)
{
    size_t n, nnull;
    struct mx_pick *picks = mx_picks(ans, &n, &nnull);
    if (n == 0 && nnull > 0) {
        free(picks);
        mx->null_mx = true;
        mx->status = DNS_OK;
        return DNS_OK;
    }
    if (n > DNS_MX_HOSTS_MAX) n = DNS_MX_HOSTS_MAX;
    size_t tempfails = 0;
    for (size_t i = 0; i < n; i++) {
        struct dns_mx_host *h = mx_add_host(mx, picks[i].name, picks[i].pref);
        if (is_ip(h->name)) {
            h->addr_status = DNS_BADNAME; /* an MX must name a host, not an address */
            continue;
        }
        host_lookup(r, h, mx->error, sizeof(mx->error));
        if (h->addr_status == DNS_TEMPFAIL) tempfails++;
    }
    free(picks);
    mx->status = n > 0 && tempfails == n ? DNS_TEMPFAIL : DNS_OK;
    if (mx->status == DNS_OK) mx->error[0] = '\0';
    return mx->status;
}

enum dns_status dns_resolve_mx(struct dns_resolver *r, const char *domain, struct dns_mx *mx_r)
{
    memset(mx_r, 0, sizeof(*mx_r));
    if (domain[0] == '[') return literal_route(domain, mx_r);
    struct dns_answer ans;
    enum dns_status st = dns_query(r, domain, DNS_T_MX, &ans, NULL);
    switch (st) {
    case DNS_OK: mx_route(r, &ans, mx_r); break;
    case DNS_NODATA: implicit_route(r, domain, mx_r); break;
    default:
        mx_r->status = st;
        snprintf(mx_r->error, sizeof(mx_r->error), "%s MX: %s", domain,
                 st == DNS_NXDOMAIN ? "no such domain" : ans.error);
        break;
    }
    dns_answer_clear(&ans);
    return mx_r->status;
}

void dns_mx_clear(struct dns_mx *mx)
{
    for (size_t i = 0; i < mx->nhosts; i++) {
        struct dns_mx_host *h = &mx->hosts[i];
        for (size_t j = 0; j < h->naddrs; j++)
            free(h->addrs[j]);
        free(h->addrs);
        free(h->name);
    }
    free(mx->hosts);
    mx->hosts = NULL;
    mx->nhosts = 0;
}
