/*
 * config.c - funcmond's configuration: defaults, then the YAML file, then the environment,
 * every value checked before anything starts.
 *
 * funcmond runs beside services it must not disturb, so a configuration it does not fully
 * understand is refused with one line naming the key and where the value came from (the
 * file and line, or the environment variable), never half applied: the Go original
 * silently ignored three of its keys. Every key is described once, in the table below
 * (section, name, type, field, range, extra rule); the file reader, the environment reader
 * and the printer all walk that table, so a key cannot be read but not printed, or printed
 * in a form that does not read back. Each value is checked where it is given, so its error
 * points at that place; checks between keys run on the merged result. Loading builds a
 * private copy and writes the caller's struct only when all of it is valid.
 *
 * Numbers are read with strtod and printed with snprintf, which follow LC_NUMERIC:
 * funcmond keeps the "C" locale (it never calls setlocale), so '.' is the decimal point.
 */
#define _GNU_SOURCE
#include "config.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

/* A config file is a few hundred bytes; anything past this is the wrong file (a binary,
 * /dev/zero), and reading on would only delay the error. */
#define CONFIG_FILE_MAX (1024 * 1024)
/* The longest text taken as a number: more than any double needs in plain notation. */
#define NUMBER_TEXT_MAX 128
/* Values longer than this are cut in messages, so one line stays one readable line. */
#define SHOWN_BYTES 40
#define SHOWN_MAX (2 + SHOWN_BYTES * 4 + 3 + 1) /* quotes, each byte escaped as \xHH, "...", NUL */
#define WHY_MAX 512

enum section { SEC_PROFILING, SEC_METRICS, SEC_HTTP, SEC_SIDECAR, SEC_COUNT };

static const char *const section_names[SEC_COUNT] = {"PROFILING", "METRICS", "HTTP", "SIDECAR"};

enum kind { KIND_BOOL, KIND_U32, KIND_STR, KIND_LIST };

struct key {
    enum section sec;
    const char *name;
    enum kind kind;
    size_t off;        /* the field in struct funcmond_config */
    size_t size;       /* KIND_STR: the field's size, terminator included */
    size_t count_off;  /* KIND_LIST: the field holding how many values there are */
    uint32_t min, max; /* KIND_U32: accepted range, inclusive */
    /* KIND_STR: a rule beyond length and encoding, or NULL; 0, or -1 with the reason in why. */
    int (*rule)(const char *s, char *why, size_t whylen);
};

static int rule_url_path(const char *s, char *why, size_t whylen);
static int rule_profiling_path(const char *s, char *why, size_t whylen);
static int rule_listen(const char *s, char *why, size_t whylen);
static int rule_token(const char *s, char *why, size_t whylen);
static int rule_shm_prefix(const char *s, char *why, size_t whylen);
static int rule_not_empty(const char *s, char *why, size_t whylen);

#define FIELD_SIZE(f) sizeof(((struct funcmond_config *)0)->f)
#define BOOL_KEY(s, n, f)                                                                                                          \
    {                                                                                                                              \
        .sec = (s), .name = (n), .kind = KIND_BOOL, .off = offsetof(struct funcmond_config, f)                                     \
    }
#define U32_KEY(s, n, f, lo, hi)                                                                                                   \
    {                                                                                                                              \
        .sec = (s), .name = (n), .kind = KIND_U32, .off = offsetof(struct funcmond_config, f), .min = (lo), .max = (hi)            \
    }
#define STR_KEY(s, n, f, r)                                                                                                        \
    {                                                                                                                              \
        .sec = (s), .name = (n), .kind = KIND_STR, .off = offsetof(struct funcmond_config, f), .size = FIELD_SIZE(f), .rule = (r)  \
    }
#define LIST_KEY(s, n, f, cnt)                                                                                                     \
    {                                                                                                                              \
        .sec = (s), .name = (n), .kind = KIND_LIST, .off = offsetof(struct funcmond_config, f),                                    \
        .count_off = offsetof(struct funcmond_config, cnt)                                                                         \
    }

/* Grouped by section, in the order funcmond_config_print writes them. Ranges and rules are
 * those of config.h. */
static const struct key keys[] = {
    BOOL_KEY(SEC_PROFILING, "ENABLED", profiling_enabled),
    STR_KEY(SEC_PROFILING, "PATH", profiling_path, rule_profiling_path),
    U32_KEY(SEC_PROFILING, "CPU_PROFILE_DURATION", cpu_profile_duration_s, 1, 3600),
    U32_KEY(SEC_PROFILING, "MEMORY_PROFILE_INTERVAL", memory_profile_interval_s, 1, 86400),
    BOOL_KEY(SEC_METRICS, "ENABLED", metrics_enabled),
    STR_KEY(SEC_METRICS, "PATH", metrics_path, rule_url_path),
    /* Same syntax as the client's FUNCMON_SKIP_PATHS, which owns its meaning: only length
     * and encoding are checked here. */
    STR_KEY(SEC_METRICS, "SKIP_PATHS", metrics_skip_paths, NULL),
    STR_KEY(SEC_HTTP, "LISTEN", http_listen, rule_listen),
    STR_KEY(SEC_HTTP, "AUTH_TOKEN", auth_token, rule_token),
    BOOL_KEY(SEC_HTTP, "HTTP2", http2),
    STR_KEY(SEC_SIDECAR, "SHM_PREFIX", shm_prefix, rule_shm_prefix),
    STR_KEY(SEC_SIDECAR, "SHM_DIR", shm_dir, rule_not_empty),
    U32_KEY(SEC_SIDECAR, "DRAIN_INTERVAL_MS", drain_interval_ms, 1, 10000),
    STR_KEY(SEC_SIDECAR, "STATE_FILE", state_file, NULL),
    U32_KEY(SEC_SIDECAR, "STATE_INTERVAL_S", state_interval_s, 1, 3600),
    U32_KEY(SEC_SIDECAR, "MAX_FUNCTIONS", max_functions, 1, 1000000),
    U32_KEY(SEC_SIDECAR, "EXITED_RETENTION_S", exited_retention_s, 0, 86400),
    U32_KEY(SEC_SIDECAR, "RESCAN_INTERVAL_S", rescan_interval_s, 1, 3600),
    BOOL_KEY(SEC_SIDECAR, "ALLOW_OTHER_UIDS", allow_other_uids),
    LIST_KEY(SEC_SIDECAR, "DURATION_BUCKETS", duration_buckets, n_duration_buckets),
    LIST_KEY(SEC_SIDECAR, "MEMORY_BUCKETS", memory_buckets, n_memory_buckets),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

_Static_assert(FIELD_SIZE(duration_buckets) == FUNCMOND_MAX_BUCKETS * sizeof(double), "bucket array size");
_Static_assert(FIELD_SIZE(memory_buckets) == FUNCMOND_MAX_BUCKETS * sizeof(double), "bucket array size");
_Static_assert(FIELD_SIZE(shm_prefix) <= NAME_MAX, "an shm object name is one path component");

/* Where a key's current value came from, for messages: later sources win. */
enum source { FROM_DEFAULT, FROM_FILE, FROM_ENV };

struct loader {
    struct funcmond_config cfg; /* built here, copied out only when all of it is valid */
    const char *file;           /* the file's name as given, for messages */
    enum source source[NKEYS];
    size_t line[NKEYS]; /* FROM_FILE: the value's line, 1-based */
    char *err;
    size_t errlen;
    int error; /* what funcmond_config_load returns: -errno of a failed read, else -EINVAL */
};

static void *
field(struct funcmond_config *c, const struct key *k)
{
    return (char *)c + k->off;
}

static const void *
cfield(const struct funcmond_config *c, const struct key *k)
{
    return (const char *)c + k->off;
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ASCII only: the config's words are ASCII, and the process locale must not change them. */
static int
to_upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

static int
is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Renders s (len bytes) for a message into buf (SHOWN_MAX bytes): in double quotes when
 * quote is set, control bytes (and every byte >= 0x80 unless s is valid UTF-8) as \xHH,
 * cut with "..." past SHOWN_BYTES. Returns buf.
 */
static const char *
show(const char *s, size_t len, int quote, char *buf)
{
    int utf8 = funcmond_utf8_valid(s, len);
    size_t cut = len, o = 0;

    if (cut > SHOWN_BYTES) {
        cut = SHOWN_BYTES;
        while (utf8 && cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
            cut--; /* do not split a character */
    }
    if (quote)
        buf[o++] = '"';
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((quote && c == '"') || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            o += (size_t)snprintf(buf + o, SHOWN_MAX - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (quote)
        buf[o++] = '"';
    if (cut < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* Writes a reason into why; returns -1 so a check can end with `return reason(...)`. */
static int reason(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
reason(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/*
 * Writes the one-line error "<where>: <what>: <problem>", without "<what>: " when what is
 * NULL and with " (line N)" when line is not 0, into the caller's err. Returns -1.
 */
static int failf(struct loader *ld, const char *where, const char *what, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
failf(struct loader *ld, const char *where, const char *what, size_t line, const char *fmt, ...)
{
    char problem[WHY_MAX + 256], at[32] = "";
    va_list ap;

    if (ld->err == NULL || ld->errlen == 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    if (line != 0)
        snprintf(at, sizeof(at), " (line %zu)", line);
    if (what != NULL)
        snprintf(ld->err, ld->errlen, "%s: %s: %s%s", where, what, problem, at);
    else
        snprintf(ld->err, ld->errlen, "%s: %s%s", where, problem, at);
    return -1;
}

/* Names key k as its source knows it: SECTION.KEY in the file, SECTION_KEY in the environment. */
static const char *
key_label(const struct key *k, enum source src, char *buf, size_t size)
{
    snprintf(buf, size, "%s%c%s", section_names[k->sec], src == FROM_ENV ? '_' : '.', k->name);
    return buf;
}

/* failf for a value of key k that came from src (at line, for the file). */
static int fail_key(struct loader *ld, const struct key *k, enum source src, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
fail_key(struct loader *ld, const struct key *k, enum source src, size_t line, const char *fmt, ...)
{
    char label[64], problem[WHY_MAX + 256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    return failf(ld,
                 src == FROM_ENV    ? "environment"
                 : src == FROM_FILE ? ld->file
                                    : "defaults",
                 key_label(k, src, label, sizeof(label)), src == FROM_FILE ? line : 0, "%s", problem);
}

/*
 * Number formatting shared by the printer and the messages: the shortest text that strtod
 * reads back to exactly v; whole numbers below 2^53 without exponent (1048576, not
 * 1.048576e+06). buf has at least 32 bytes.
 */
static const char *
format_double(double v, char *buf, size_t size)
{
    if (v >= 0 && v < 9007199254740992.0 && v == (double)(uint64_t)v) {
        snprintf(buf, size, "%" PRIu64, (uint64_t)v);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf; /* %.17g always reads back */
}

/*
 * Edit distance between a (alen bytes) and b, ignoring ASCII case; SIZE_MAX for names too
 * long to be a typo of ours.
 */
static size_t
distance(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b), row[65], prev, up;

    if (alen > 64 || blen > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= blen; j++)
        row[j] = j;
    for (size_t i = 1; i <= alen; i++) {
        prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= blen; j++) {
            size_t best = prev + (to_upper((unsigned char)a[i - 1]) != to_upper((unsigned char)b[j - 1]));
            up = row[j];
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            prev = up;
            row[j] = best;
        }
    }
    return row[blen];
}

struct hint {
    const char *best;
    size_t dist;
};

static void
hint_consider(struct hint *h, const char *name, size_t len, const char *candidate)
{
    size_t d = distance(name, len, candidate);

    if (h->best == NULL || d < h->dist) {
        h->best = candidate;
        h->dist = d;
    }
}

/* " (did you mean X?)" for a near miss (wrong case, or two letters off at most), else "". */
static const char *
hint_text(const struct hint *h, char *buf, size_t size)
{
    if (h->best != NULL && h->dist == 0)
        snprintf(buf, size, " (names are upper case: did you mean %s?)", h->best);
    else if (h->best != NULL && h->dist <= 2)
        snprintf(buf, size, " (did you mean %s?)", h->best);
    else
        buf[0] = '\0';
    return buf;
}

static int
find_section(const char *name, size_t len)
{
    for (int s = 0; s < SEC_COUNT; s++)
        if (strlen(section_names[s]) == len && memcmp(section_names[s], name, len) == 0)
            return s;
    return -1;
}

static int
find_key(enum section sec, const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].sec == sec && strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* Booleans: true/false, yes/no, on/off, 1/0, in any case. Returns 0 or -1. */
static int
parse_bool(const char *s, size_t len, int *out)
{
    static const struct {
        const char *word;
        int value;
    } words[] = {{"true", 1}, {"yes", 1}, {"on", 1}, {"1", 1}, {"false", 0}, {"no", 0}, {"off", 0}, {"0", 0}};

    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        const char *word = words[w].word;
        size_t i = 0;
        if (strlen(word) != len)
            continue;
        while (i < len && to_upper((unsigned char)s[i]) == to_upper((unsigned char)word[i]))
            i++;
        if (i == len) {
            *out = words[w].value;
            return 0;
        }
    }
    return -1;
}

/*
 * A whole number in min..max written in decimal digits only: no sign, no space, no
 * garbage, and no leading zero, since YAML 1.1 reads 010 as octal 8 and we must not guess
 * which the writer meant. Returns 0, or -1 with the reason in why.
 */
static int
parse_u32(const char *s, size_t len, uint32_t min, uint32_t max, uint32_t *out, char *why, size_t whylen)
{
    char shown[SHOWN_MAX];
    uint64_t v = 0;

    if (len == 0)
        return reason(why, whylen, "\"\" is not a whole number");
    for (size_t i = 0; i < len; i++)
        if (!is_digit((unsigned char)s[i]))
            return reason(why, whylen, "%s is not a decimal whole number", show(s, len, 1, shown));
    if (len > 1 && s[0] == '0')
        return reason(why, whylen, "%s has a leading zero (octal is not supported; write the number without it)",
                      show(s, len, 1, shown));
    for (size_t i = 0; i < len && v <= UINT32_MAX; i++)
        v = v * 10 + (uint64_t)(s[i] - '0'); /* stops past UINT32_MAX, far from overflowing */
    if (v < min || v > max)
        return reason(why, whylen, "%s is out of range %" PRIu32 "..%" PRIu32, show(s, len, 1, shown), min, max);
    *out = (uint32_t)v;
    return 0;
}

/* A finite double, the whole text consumed by strtod. Returns 0, or -1 with the reason in why. */
static int
parse_double(const char *s, size_t len, double *out, char *why, size_t whylen)
{
    char text[NUMBER_TEXT_MAX], shown[SHOWN_MAX], *end;
    double v;

    if (len == 0 || len >= sizeof(text) || is_space((unsigned char)s[0]))
        return reason(why, whylen, "%s is not a number", show(s, len, 1, shown));
    memcpy(text, s, len);
    text[len] = '\0';
    errno = 0;
    v = strtod(text, &end);
    if (end != text + len)
        return reason(why, whylen, "%s is not a number", show(s, len, 1, shown));
    if (!isfinite(v))
        return reason(why, whylen, "%s is not a finite number", show(s, len, 1, shown));
    if (errno == ERANGE)
        return reason(why, whylen, "%s is too close to zero to be represented", show(s, len, 1, shown));
    *out = v;
    return 0;
}

/* PATH values: an absolute URL path without whitespace or control characters. */
static int
rule_url_path(const char *s, char *why, size_t whylen)
{
    char shown[SHOWN_MAX];

    if (s[0] != '/')
        return reason(why, whylen, "%s must start with '/'", show(s, strlen(s), 1, shown));
    for (const char *p = s; *p != '\0'; p++)
        if (is_space((unsigned char)*p) || (unsigned char)*p < 0x20 || *p == 0x7f)
            return reason(why, whylen, "%s contains whitespace or a control character", show(s, strlen(s), 1, shown));
    return 0;
}

/* PROFILING.PATH prefixes every API path, so a trailing '/' would make them "//stats". */
static int
rule_profiling_path(const char *s, char *why, size_t whylen)
{
    char shown[SHOWN_MAX];
    size_t n = strlen(s);

    if (rule_url_path(s, why, whylen) != 0)
        return -1;
    if (n > 1 && s[n - 1] == '/')
        return reason(why, whylen, "%s must not end with '/' (only \"/\" itself may)", show(s, n, 1, shown));
    return 0;
}

/* A host name: dot-separated labels of 1..63 letters, digits, '-' (not first or last) and
 * '_' (found in container names), 253 characters at most, one trailing dot allowed. A name
 * of digits and dots only must be a dotted-quad IPv4 address, so 127.0.0.256 is refused
 * here rather than looked up. */
static int
valid_host(const char *h)
{
    size_t n = strlen(h), label = 0;
    int numeric = 1;
    struct in_addr a4;

    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)h[i]) && h[i] != '.')
            numeric = 0;
    if (numeric)
        return inet_pton(AF_INET, h, &a4) == 1;
    if (n > 0 && h[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? h[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || h[i - 1] == '-')
                return 0;
            label = 0;
        } else if (is_alnum((unsigned char)c) || c == '_' || (c == '-' && label > 0)) {
            label++;
        } else {
            return 0;
        }
    }
    return 1;
}

/* An IPv6 address, optionally with a zone (fe80::1%eth0) that getaddrinfo understands. */
static int
valid_ipv6(const char *h)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *zone = strchr(h, '%');
    size_t n = zone != NULL ? (size_t)(zone - h) : strlen(h);
    struct in6_addr a6;

    if (n >= sizeof(addr))
        return 0;
    memcpy(addr, h, n);
    addr[n] = '\0';
    if (zone != NULL) {
        size_t zl = strlen(++zone);
        if (zl == 0 || zl > 15) /* an interface name or index: IF_NAMESIZE - 1 */
            return 0;
        for (size_t i = 0; i < zl; i++)
            if (!is_alnum((unsigned char)zone[i]) && zone[i] != '.' && zone[i] != '-' && zone[i] != '_')
                return 0;
    }
    return inet_pton(AF_INET6, addr, &a6) == 1;
}

/*
 * HTTP.LISTEN: host:port or [ipv6]:port; the host a name, an IPv4 address or a bracketed
 * IPv6 address, never empty (0.0.0.0 or [::] say "every address" explicitly). The port is
 * 1..65535, or 0, which asks the kernel for a free ephemeral port (tests listen that way).
 */
static int
rule_listen(const char *s, char *why, size_t whylen)
{
    char shown[SHOWN_MAX], host[FIELD_SIZE(http_listen)], pwhy[WHY_MAX];
    const char *port;
    size_t hl;
    uint32_t p;

    show(s, strlen(s), 1, shown);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return reason(why, whylen, "%s has '[' without ']' (expected [ipv6]:port)", shown);
        if (close[1] != ':')
            return reason(why, whylen, "%s: expected ':' and a port after ']'", shown);
        hl = (size_t)(close - s - 1);
        if (hl >= sizeof(host))
            return reason(why, whylen, "%s: the address is too long", shown);
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        if (!valid_ipv6(host))
            return reason(why, whylen, "%s: the part in brackets is not an IPv6 address", shown);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL)
            return reason(why, whylen, "%s is not host:port or [ipv6]:port", shown);
        hl = (size_t)(colon - s);
        if (hl >= sizeof(host))
            return reason(why, whylen, "%s: the host is too long", shown);
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (memchr(host, ':', hl) != NULL)
            return reason(why, whylen, "%s: an IPv6 address must be in brackets, as in [::1]:10000", shown);
        if (hl == 0)
            return reason(why, whylen, "%s has no host (write 0.0.0.0 or [::] to listen on every address)", shown);
        if (!valid_host(host))
            return reason(why, whylen, "%s: the host is neither an IPv4 address nor a valid host name", shown);
        port = colon + 1;
    }
    if (parse_u32(port, strlen(port), 0, 65535, &p, pwhy, sizeof(pwhy)) != 0)
        return reason(why, whylen, "%s: bad port: %s", shown, pwhy);
    return 0;
}

/* The token travels in an HTTP header, where control characters cannot. It is a secret, so
 * no message ever shows it. */
static int
rule_token(const char *s, char *why, size_t whylen)
{
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return reason(why, whylen, "contains a control character (the value is not shown: it is a secret)");
    return 0;
}

/* Segments are /<prefix>.<service>.<pid>: the prefix is part of one name, as in the client. */
static int
rule_shm_prefix(const char *s, char *why, size_t whylen)
{
    char shown[SHOWN_MAX];

    if (s[0] == '\0')
        return reason(why, whylen, "must not be empty");
    if (strchr(s, '/') != NULL)
        return reason(why, whylen, "%s must not contain '/'", show(s, strlen(s), 1, shown));
    return 0;
}

static int
rule_not_empty(const char *s, char *why, size_t whylen)
{
    return s[0] == '\0' ? reason(why, whylen, "must not be empty") : 0;
}

/*
 * Stores a scalar value (text s, len bytes, not necessarily terminated) for key k in c,
 * converting and checking it. Strings must be valid UTF-8 (the printer must write YAML,
 * which is UTF-8) without NUL and fit their field. Returns 0, or -1 with the reason in why.
 */
static int
set_scalar(struct funcmond_config *c, const struct key *k, const char *s, size_t len, char *why, size_t whylen)
{
    char shown[SHOWN_MAX];

    switch (k->kind) {
    case KIND_BOOL:
        if (parse_bool(s, len, field(c, k)) != 0)
            return reason(why, whylen, "%s is not a boolean (true/false, yes/no, on/off, 1/0)", show(s, len, 1, shown));
        return 0;
    case KIND_U32:
        return parse_u32(s, len, k->min, k->max, field(c, k), why, whylen);
    case KIND_STR: {
        char *dst = field(c, k);
        if (memchr(s, '\0', len) != NULL)
            return reason(why, whylen, "contains a NUL character");
        if (len >= k->size)
            return reason(why, whylen, "is too long (%zu bytes, at most %zu)", len, k->size - 1);
        if (!funcmond_utf8_valid(s, len))
            return reason(why, whylen, "is not valid UTF-8");
        memcpy(dst, s, len);
        memset(dst + len, 0, k->size - len);
        return k->rule != NULL ? k->rule(dst, why, whylen) : 0;
    }
    case KIND_LIST:
        break;
    }
    return reason(why, whylen, "expected a list of numbers");
}

/* Stores a bucket list (n values) for key k in c once it is checked: 1..FUNCMOND_MAX_BUCKETS
 * values, all > 0, strictly increasing. Returns 0, or -1 with the reason in why. */
static int
set_list(struct funcmond_config *c, const struct key *k, const double *v, size_t n, char *why, size_t whylen)
{
    char a[32], b[32];
    double *dst = field(c, k);

    if (n == 0)
        return reason(why, whylen, "the list must not be empty");
    if (n > FUNCMOND_MAX_BUCKETS)
        return reason(why, whylen, "the list has %zu values, at most %d are allowed", n, FUNCMOND_MAX_BUCKETS);
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] > 0))
            return reason(why, whylen, "value #%zu (%s) must be greater than 0", i + 1, format_double(v[i], a, sizeof(a)));
        if (i > 0 && v[i] <= v[i - 1])
            return reason(why, whylen,
                          "value #%zu (%s) is not greater than the one before (%s): values must be strictly increasing", i + 1,
                          format_double(v[i], a, sizeof(a)), format_double(v[i - 1], b, sizeof(b)));
    }
    memset(dst, 0, FUNCMOND_MAX_BUCKETS * sizeof(double));
    memcpy(dst, v, n * sizeof(double));
    *(size_t *)((char *)c + k->count_off) = n;
    return 0;
}

static size_t
line_of(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

/* A plain null (nothing, ~, null): "PROFILING:" with every key commented out is empty. */
static int
is_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static const char *
node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return is_null(n) ? "no value" : "a single value";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* Reads the value node vn of key k from the file into ld->cfg. Returns 0 or -1 (err set). */
static int
read_value(struct loader *ld, yaml_document_t *doc, const struct key *k, yaml_node_t *vn)
{
    char why[WHY_MAX];

    if (k->kind == KIND_LIST) {
        double v[FUNCMOND_MAX_BUCKETS];
        size_t n = 0;
        if (vn->type != YAML_SEQUENCE_NODE)
            return fail_key(ld, k, FROM_FILE, line_of(vn), "expected a list of numbers, found %s", node_kind(vn));
        for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top; it++) {
            yaml_node_t *in = yaml_document_get_node(doc, *it);
            if (in->type != YAML_SCALAR_NODE || is_null(in))
                return fail_key(ld, k, FROM_FILE, line_of(in), "value #%zu: expected a number, found %s", n + 1, node_kind(in));
            if (n == FUNCMOND_MAX_BUCKETS)
                return fail_key(ld, k, FROM_FILE, line_of(vn), "the list has more than %d values", FUNCMOND_MAX_BUCKETS);
            if (parse_double((const char *)in->data.scalar.value, in->data.scalar.length, &v[n], why, sizeof(why)) != 0)
                return fail_key(ld, k, FROM_FILE, line_of(in), "value #%zu: %s", n + 1, why);
            n++;
        }
        if (set_list(&ld->cfg, k, v, n, why, sizeof(why)) != 0)
            return fail_key(ld, k, FROM_FILE, line_of(vn), "%s", why);
        return 0;
    }
    if (vn->type != YAML_SCALAR_NODE)
        return fail_key(ld, k, FROM_FILE, line_of(vn), "expected a single value, found %s", node_kind(vn));
    if (is_null(vn))
        return fail_key(ld, k, FROM_FILE, line_of(vn), "has no value%s",
                        k->kind == KIND_STR ? " (write \"\" for an empty string)" : "");
    if (set_scalar(&ld->cfg, k, (const char *)vn->data.scalar.value, vn->data.scalar.length, why, sizeof(why)) != 0)
        return fail_key(ld, k, FROM_FILE, line_of(vn), "%s", why);
    return 0;
}

/* Reads the keys of one section (mapping node map). Returns 0 or -1 (err set). */
static int
read_keys(struct loader *ld, yaml_document_t *doc, enum section sec, yaml_node_t *map)
{
    size_t first[NKEYS] = {0}; /* line where each key was seen, to refuse a second one */

    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        char what[SHOWN_MAX + 16], shown[SHOWN_MAX], hint[96];
        const char *name;
        size_t len;
        int i;

        if (kn->type != YAML_SCALAR_NODE)
            return failf(ld, ld->file, section_names[sec], line_of(kn), "a key must be a name, found %s", node_kind(kn));
        name = (const char *)kn->data.scalar.value;
        len = kn->data.scalar.length;
        if ((i = find_key(sec, name, len)) < 0) {
            struct hint h = {0};
            for (size_t j = 0; j < NKEYS; j++)
                if (keys[j].sec == sec)
                    hint_consider(&h, name, len, keys[j].name);
            snprintf(what, sizeof(what), "%s.%s", section_names[sec], show(name, len, 0, shown));
            return failf(ld, ld->file, what, line_of(kn), "unknown key%s", hint_text(&h, hint, sizeof(hint)));
        }
        if (first[i] != 0)
            return fail_key(ld, &keys[i], FROM_FILE, line_of(kn), "key given twice (first at line %zu)", first[i]);
        first[i] = line_of(kn);
        if (read_value(ld, doc, &keys[i], vn) != 0)
            return -1;
        ld->source[i] = FROM_FILE;
        ld->line[i] = line_of(vn);
    }
    return 0;
}

/* Reads the document's root: a mapping of sections. Returns 0 or -1 (err set). */
static int
read_sections(struct loader *ld, yaml_document_t *doc, yaml_node_t *root)
{
    size_t first[SEC_COUNT] = {0};

    if (is_null(root)) /* "---" alone, or "~": no settings */
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return failf(ld, ld->file, NULL, line_of(root),
                     "expected a mapping of sections (PROFILING, METRICS, HTTP, SIDECAR) at the top level, found %s",
                     node_kind(root));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        char shown[SHOWN_MAX], hint[96];
        const char *name;
        size_t len;
        int s;

        if (kn->type != YAML_SCALAR_NODE)
            return failf(ld, ld->file, NULL, line_of(kn), "a section must be a name, found %s", node_kind(kn));
        name = (const char *)kn->data.scalar.value;
        len = kn->data.scalar.length;
        if ((s = find_section(name, len)) < 0) {
            struct hint h = {0};
            for (int j = 0; j < SEC_COUNT; j++)
                hint_consider(&h, name, len, section_names[j]);
            return failf(ld, ld->file, show(name, len, 0, shown), line_of(kn), "unknown section%s",
                         hint_text(&h, hint, sizeof(hint)));
        }
        if (first[s] != 0)
            return failf(ld, ld->file, section_names[s], line_of(kn), "section given twice (first at line %zu)", first[s]);
        first[s] = line_of(kn);
        if (is_null(vn))
            continue;
        if (vn->type != YAML_MAPPING_NODE)
            return failf(ld, ld->file, section_names[s], line_of(vn), "expected a mapping of keys, found %s", node_kind(vn));
        if (read_keys(ld, doc, (enum section)s, vn) != 0)
            return -1;
    }
    return 0;
}

/* Turns libyaml's error into our one line. Returns -1. */
static int
yaml_error(struct loader *ld, const yaml_parser_t *p)
{
    const char *problem = p->problem != NULL ? p->problem : "unknown error";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return failf(ld, ld->file, NULL, 0, "out of memory while parsing YAML");
    case YAML_READER_ERROR:
        if (p->problem_value != -1)
            return failf(ld, ld->file, NULL, 0, "cannot read YAML at byte %zu: %s (#%X)", p->problem_offset, problem,
                         (unsigned)p->problem_value);
        return failf(ld, ld->file, NULL, 0, "cannot read YAML at byte %zu: %s", p->problem_offset, problem);
    default:
        if (p->context != NULL)
            return failf(ld, ld->file, NULL, 0, "YAML syntax error at line %zu, column %zu: %s (%s at line %zu, column %zu)",
                         p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context, p->context_mark.line + 1,
                         p->context_mark.column + 1);
        return failf(ld, ld->file, NULL, 0, "YAML syntax error at line %zu, column %zu: %s", p->problem_mark.line + 1,
                     p->problem_mark.column + 1, problem);
    }
}

/* Parses the file's text (len bytes) and reads its one document. Returns 0 or -1 (err set). */
static int
read_yaml(struct loader *ld, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, next;
    yaml_node_t *root;
    int ret;

    if (!yaml_parser_initialize(&parser))
        return failf(ld, ld->file, NULL, 0, "out of memory while parsing YAML");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) { /* on failure the document is already freed */
        ret = yaml_error(ld, &parser);
        goto out;
    }
    root = yaml_document_get_root_node(&doc);
    ret = root != NULL ? read_sections(ld, &doc, root) : 0; /* no root: empty, or comments only */
    if (ret == 0) {
        /* A second document would be ignored by a reader that stops at the first: refuse it,
         * unless it is empty (a trailing "---"). */
        if (!yaml_parser_load(&parser, &next)) {
            ret = yaml_error(ld, &parser);
        } else {
            if ((root = yaml_document_get_root_node(&next)) != NULL && !is_null(root))
                ret = failf(ld, ld->file, NULL, line_of(root), "more than one YAML document; put every section in the first");
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
out:
    yaml_parser_delete(&parser);
    return ret;
}

const char *
funcmond_file_kind(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
        return "a regular file";
    case S_IFDIR:
        return "a directory";
    case S_IFIFO:
        return "a FIFO";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFSOCK:
        return "a socket";
    case S_IFLNK:
        return "a symbolic link";
    default:
        return "of an unknown type";
    }
}

/* Reads the file at path into ld->cfg. Returns 0 or -1 (err set, with strerror for I/O, and
 * ld->error set to the -errno of a failed read). */
static int
read_file(struct loader *ld, const char *path)
{
    FILE *f;
    struct stat st;
    char *text = NULL, *bigger;
    size_t len = 0, cap = 0, got;
    int ret = -1, e, fd;

    ld->file = path;
    /* Only a regular file is a configuration file, and it is looked at before it is
     * opened: opening a FIFO waits for a writer that may never come (funcmond would hang
     * at start), and opening a device node can have effects of its own. */
    if (stat(path, &st) != 0)
        return ld->error = -errno, failf(ld, path, NULL, 0, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return failf(ld, path, NULL, 0, "not a regular file (%s)", funcmond_file_kind(st.st_mode));
    /* O_NONBLOCK: had it become a FIFO since, open would not wait either; fstat tells. */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0)
        return ld->error = -errno, failf(ld, path, NULL, 0, "cannot open: %s", strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        e = errno;
        close(fd);
        if (!S_ISREG(st.st_mode))
            return failf(ld, path, NULL, 0, "not a regular file (%s)", funcmond_file_kind(st.st_mode));
        ld->error = -e;
        return failf(ld, path, NULL, 0, "cannot read: %s", strerror(e));
    }
    if ((f = fdopen(fd, "rb")) == NULL) {
        e = errno;
        close(fd);
        ld->error = -e;
        return failf(ld, path, NULL, 0, "cannot open: %s", strerror(e));
    }
    for (;;) {
        if (len == cap) {
            cap = cap == 0 ? 4096 : cap * 2;
            if ((bigger = realloc(text, cap)) == NULL) {
                ld->error = -ENOMEM;
                failf(ld, path, NULL, 0, "out of memory reading the file");
                goto out;
            }
            text = bigger;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
        if (len > CONFIG_FILE_MAX) {
            ld->error = -EFBIG;
            failf(ld, path, NULL, 0, "larger than %d bytes: not a configuration file", CONFIG_FILE_MAX);
            goto out;
        }
        if (got == 0) {
            if (ferror(f)) {
                e = errno;
                ld->error = -e;
                failf(ld, path, NULL, 0, "cannot read: %s", strerror(e));
                goto out;
            }
            break;
        }
    }
    ret = read_yaml(ld, text, len);
out:
    free(text);
    fclose(f);
    return ret;
}

/* The value of SECTION_KEY in envp, the first one as getenv would find it, or NULL. */
static const char *
env_value(char *const *envp, const struct key *k)
{
    const char *sec = section_names[k->sec];
    size_t sl = strlen(sec), nl = strlen(k->name);

    for (; envp != NULL && *envp != NULL; envp++) {
        const char *e = *envp;
        if (strncmp(e, sec, sl) == 0 && e[sl] == '_' && strncmp(e + sl + 1, k->name, nl) == 0 && e[sl + 1 + nl] == '=')
            return e + sl + nl + 2;
    }
    return NULL;
}

static void
trim(const char **begin, const char **end)
{
    while (*begin < *end && is_space((unsigned char)**begin))
        (*begin)++;
    while (*end > *begin && is_space((unsigned char)(*end)[-1]))
        (*end)--;
}

/*
 * A list from the environment: "0.005,0.01,1" or "[0.005, 0.01, 1]", spaces allowed around
 * values and brackets. Stores up to FUNCMOND_MAX_BUCKETS values in v and their count in *n
 * (0 for "" or "[]": set_list refuses it). Returns 0, or -1 with the reason in why.
 */
static int
parse_env_list(const char *s, double *v, size_t *n, char *why, size_t whylen)
{
    const char *p = s, *end = s + strlen(s);
    char shown[SHOWN_MAX], w[WHY_MAX];

    *n = 0;
    trim(&p, &end);
    if (p < end && *p == '[') {
        if (end[-1] != ']' || end - p < 2)
            return reason(why, whylen, "%s starts with '[' but does not end with ']'", show(s, strlen(s), 1, shown));
        p++;
        end--;
        trim(&p, &end);
    }
    if (p == end)
        return 0;
    for (;;) {
        const char *q = memchr(p, ',', (size_t)(end - p)), *a = p, *b;
        b = q != NULL ? q : end;
        trim(&a, &b);
        if (*n == FUNCMOND_MAX_BUCKETS)
            return reason(why, whylen, "the list has more than %d values", FUNCMOND_MAX_BUCKETS);
        if (a == b)
            return reason(why, whylen, "value #%zu is empty in %s", *n + 1, show(s, strlen(s), 1, shown));
        if (parse_double(a, (size_t)(b - a), &v[*n], w, sizeof(w)) != 0)
            return reason(why, whylen, "value #%zu: %s", *n + 1, w);
        (*n)++;
        if (q == NULL)
            return 0;
        p = q + 1;
    }
}

/* Applies every SECTION_KEY variable of envp to ld->cfg. Returns 0 or -1 (err set). */
static int
read_env(struct loader *ld, char *const *envp)
{
    char why[WHY_MAX];

    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *v = env_value(envp, k);
        if (v == NULL)
            continue;
        if (k->kind == KIND_LIST) {
            double vals[FUNCMOND_MAX_BUCKETS];
            size_t n;
            if (parse_env_list(v, vals, &n, why, sizeof(why)) != 0 || set_list(&ld->cfg, k, vals, n, why, sizeof(why)) != 0)
                return fail_key(ld, k, FROM_ENV, 0, "%s", why);
        } else if (set_scalar(&ld->cfg, k, v, strlen(v), why, sizeof(why)) != 0) {
            return fail_key(ld, k, FROM_ENV, 0, "%s", why);
        }
        ld->source[i] = FROM_ENV;
        ld->line[i] = 0;
    }
    return 0;
}

/* Says where key i's value came from, for a message about another key. */
static const char *
origin(const struct loader *ld, size_t i, char *buf, size_t size)
{
    char label[64];

    switch (ld->source[i]) {
    case FROM_FILE:
        snprintf(buf, size, "set in %s at line %zu", ld->file, ld->line[i]);
        break;
    case FROM_ENV:
        snprintf(buf, size, "set by %s", key_label(&keys[i], FROM_ENV, label, sizeof(label)));
        break;
    default:
        snprintf(buf, size, "its default");
        break;
    }
    return buf;
}

/*
 * Checks between keys, on the merged values. Blames the key set by the stronger source (the
 * environment over the file over a default), since that is the one most likely just changed.
 */
static int
check_merged(struct loader *ld)
{
    size_t prof = (size_t)find_key(SEC_PROFILING, "PATH", 4), met = (size_t)find_key(SEC_METRICS, "PATH", 4), blame, other;
    char shown[SHOWN_MAX], from[FUNCMOND_PATH_MAX + 64];

    if (strcmp(ld->cfg.profiling_path, ld->cfg.metrics_path) == 0) {
        blame = ld->source[met] >= ld->source[prof] ? met : prof;
        other = blame == met ? prof : met;
        return fail_key(ld, &keys[blame], ld->source[blame], ld->line[blame], "%s is also %s.%s (%s): the two must differ",
                        show(ld->cfg.metrics_path, strlen(ld->cfg.metrics_path), 1, shown), section_names[keys[other].sec],
                        keys[other].name, origin(ld, other, from, sizeof(from)));
    }
    return 0;
}

void
funcmond_config_defaults(struct funcmond_config *cfg)
{
    static const double duration[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
    static const double memory[] = {1024, 10240, 102400, 1048576, 10485760, 104857600};

    memset(cfg, 0, sizeof(*cfg));
    cfg->profiling_enabled = 1;
    snprintf(cfg->profiling_path, sizeof(cfg->profiling_path), "%s", "/debug");
    cfg->cpu_profile_duration_s = 30;
    cfg->memory_profile_interval_s = 60;
    cfg->metrics_enabled = 1;
    snprintf(cfg->metrics_path, sizeof(cfg->metrics_path), "%s", "/metrics");
    snprintf(cfg->metrics_skip_paths, sizeof(cfg->metrics_skip_paths), "%s", "/swagger/*;/metrics;/debug/*");
    snprintf(cfg->http_listen, sizeof(cfg->http_listen), "%s", "127.0.0.1:10000");
    cfg->http2 = 0; /* HTTP/1.1 is what its clients speak: no cleartext HTTP/2 unless asked */
    snprintf(cfg->shm_prefix, sizeof(cfg->shm_prefix), "%s", "funcmon");
    snprintf(cfg->shm_dir, sizeof(cfg->shm_dir), "%s", "/dev/shm");
    cfg->drain_interval_ms = 10;
    cfg->state_interval_s = 5;
    cfg->max_functions = 10000;
    cfg->exited_retention_s = 60;
    cfg->rescan_interval_s = 5;
    cfg->allow_other_uids = 0;
    memcpy(cfg->duration_buckets, duration, sizeof(duration));
    cfg->n_duration_buckets = sizeof(duration) / sizeof(duration[0]);
    memcpy(cfg->memory_buckets, memory, sizeof(memory));
    cfg->n_memory_buckets = sizeof(memory) / sizeof(memory[0]);
}

/*
 * See config.h. On failure *cfg is left as it was: nothing of a configuration that is not
 * valid as a whole reaches the daemon. err (may be NULL when errlen is 0) is emptied on
 * success. A value that is wrong in the file is an error even when the environment would
 * override it: the file must be valid on its own, whatever the environment of the day.
 */
int
funcmond_config_load(struct funcmond_config *cfg, const char *path, char *const *envp, char *err, size_t errlen)
{
    struct loader ld;

    memset(&ld, 0, sizeof(ld));
    ld.err = err;
    ld.errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    funcmond_config_defaults(&ld.cfg);
    if ((path != NULL && path[0] != '\0' && read_file(&ld, path) != 0) || read_env(&ld, envp) != 0 || check_merged(&ld) != 0)
        return ld.error != 0 ? ld.error : -EINVAL;
    *cfg = ld.cfg;
    return 0;
}

/*
 * Writes s as a YAML double-quoted scalar that libyaml reads back byte for byte: '"' and
 * '\' escaped, and every character YAML would not keep as is (C0 and C1 controls, which
 * include the line breaks, U+2028/U+2029 which YAML 1.1 also breaks lines at, the BOM and
 * the non-characters U+FFFE/U+FFFF) escaped by code point. A byte that is not UTF-8 (only
 * in a struct not built by funcmond_config_load) is written as \xHH, which reads back as
 * U+00HH: valid YAML, though not the same bytes.
 */
static void
print_quoted(FILE *out, const char *s, size_t size)
{
    size_t len = strnlen(s, size), n;
    uint32_t cp;

    putc('"', out);
    for (size_t i = 0; i < len; i += n) {
        if ((n = funcmond_utf8_decode((const unsigned char *)s + i, len - i, &cp)) == 0) {
            fprintf(out, "\\x%02x", (unsigned char)s[i]);
            n = 1;
        } else if (cp == '"' || cp == '\\') {
            fprintf(out, "\\%c", (char)cp);
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            fprintf(out, "\\x%02" PRIx32, cp);
        } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff) {
            fprintf(out, "\\u%04" PRIx32, cp);
        } else {
            fwrite(s + i, 1, n, out);
        }
    }
    putc('"', out);
}

void
funcmond_config_print(const struct funcmond_config *cfg, FILE *out)
{
    int sec = -1;
    char num[32];

    fputs("# funcmond configuration in effect: defaults, then the file, then the environment\n", out);
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const void *f = cfield(cfg, k);
        if ((int)k->sec != sec) {
            sec = (int)k->sec;
            fprintf(out, "%s:\n", section_names[sec]);
        }
        fprintf(out, "  %s: ", k->name);
        switch (k->kind) {
        case KIND_BOOL:
            fputs(*(const int *)f ? "true" : "false", out);
            break;
        case KIND_U32:
            fprintf(out, "%" PRIu32, *(const uint32_t *)f);
            break;
        case KIND_STR:
            print_quoted(out, f, k->size);
            break;
        case KIND_LIST: {
            const double *v = f;
            size_t n = *(const size_t *)((const char *)cfg + k->count_off);
            putc('[', out);
            for (size_t j = 0; j < n && j < FUNCMOND_MAX_BUCKETS; j++)
                fprintf(out, "%s%s", j > 0 ? ", " : "", format_double(v[j], num, sizeof(num)));
            putc(']', out);
            break;
        }
        }
        putc('\n', out);
    }
}
