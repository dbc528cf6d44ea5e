/* Payload JSON straight from aggregated flows: the renderer's hot loop, compiled.
 *
 * render(key, kept, start, end, bytes, packets, flags, extras, head, host, hostnames, tags_only, helpers
 *        [, joined[, msgpack]]) -> list[bytes] (joined: bytes, the texts separated by commas: a JSON array's
 *        inside; msgpack: each flow as msgpack.packb(object, use_bin_type=True) makes it, joined with nothing
 *        between: a msgpack array's inside)
 *
 * The flows come as the columns of flowpipe.flow.FlowColumns: key (nine columns, the KEY fields), kept
 * (a list: a tuple of the KEPT fields per flow) and six columns. A column is a list of objects; the
 * address columns (source, destination) may also be an array of 4- or 16-byte values (numpy V4/V16: their
 * bytes as they are), and the integer
 * ones (ports, protocol, ToS, input interface, start, end, bytes, packets, flags) an array of int64, read
 * in place with no object per flow. Each flow becomes the JSON text that orjson.dumps makes
 * of flowpipe.render.payload's object for it, byte for byte. The common values are written here
 * (IPv4 addresses and networks, integers, ports, MACs, interfaces, the name tables); anything
 * else (IPv6 and odd addresses, values out of 64-bit range, unusual types) is asked of the Python
 * helpers, and a flow this code cannot write at all is rendered whole by helpers.flow(flow). The
 * pure-Python renderer (flowpipe/render/payload.py) is the reference and the fallback when this module is
 * not built; tests hold the two to the same bytes.
 *
 * In msgpack mode the helpers are msgpack's (flowpipe.render.msgpacktext: every cached piece packed, not
 * JSON), head is the packed "flush_timestamp", its value and "type", and the loop writes msgpack where it
 * writes JSON: the same walk, each piece in the other encoding (the KEY, STR_OPEN/STR_CLOSE, put_int and
 * put_uint writers below take the mode).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Slots of flowpipe.flow.Flow */
enum { TYPE, EXPORTER, NAMESPACE, SAMPLING_RATE, DIRECTION, START, END, BYTES, PACKETS, ETHER_TYPE,
       IP_PROTOCOL, SRC_IP, DST_IP, SRC_PORT, DST_PORT, SRC_MAC, DST_MAC, SRC_MASK, DST_MASK, IN_IF,
       OUT_IF, TCP_FLAGS, NEXT_HOP, TOS, EXTRAS, N_FIELDS };
/* flowpipe.flow.KEY and KEPT: the fields of the key columns and of the kept tuples, in order */
#define N_KEY 9
#define N_KEPT 10
static const int KEY_FIELDS[N_KEY] = {NAMESPACE, EXPORTER, SRC_IP, DST_IP, SRC_PORT, DST_PORT, IP_PROTOCOL, TOS, IN_IF};
static const int KEPT_FIELDS[N_KEPT] = {TYPE, SAMPLING_RATE, DIRECTION, ETHER_TYPE, SRC_MAC, DST_MAC, SRC_MASK,
                                        DST_MASK, OUT_IF, NEXT_HOP};
#define N_OTHER 6
static const int OTHER_FIELDS[N_OTHER] = {START, END, BYTES, PACKETS, TCP_FLAGS, EXTRAS};

/* One flow's values: each field as an object (o), or, for the fields read from an array column (o
 * NULL), an int64 (ll) or an address's bytes in the array (raw, rawlen). */
typedef struct {
    PyObject *o[N_FIELDS];
    long long ll[N_FIELDS];
    const unsigned char *raw[N_FIELDS];
    Py_ssize_t rawlen[N_FIELDS];
} Row;

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

/* Room for ``more`` bytes; the fixed-size pieces below are written unchecked after one reserve of
 * RESERVE bytes per flow (the longest fixed part of a flow is far below it), helper-made pieces
 * (names, extras, IPv6) through put() with its own check. */
#define RESERVE 1024

static int buf_grow(Buf *b, Py_ssize_t more) {
    if (b->len + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap * 2 : 1024;
    while (cap < b->len + more) cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (!p) { PyErr_NoMemory(); return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_grow(b, n + RESERVE) < 0) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* A literal, into room already reserved: never fails (0, for the ``< 0`` checks). */
#define PUTS(b, lit) (memcpy((b)->p + (b)->len, (lit), sizeof(lit) - 1), (b)->len += sizeof(lit) - 1, 0)

static int put_bytes(Buf *b, PyObject *o) {
    if (!PyBytes_Check(o)) { PyErr_SetString(PyExc_TypeError, "helper must return bytes"); return -1; }
    return put(b, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
}

static inline int put_u64(Buf *b, unsigned long long v) {
    char tmp[24];
    int i = 24;
    do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    memcpy(b->p + b->len, tmp + i, 24 - i);
    b->len += 24 - i;
    return 0;
}

static inline int put_i64(Buf *b, long long v) {
    if (v < 0) {
        if (PUTS(b, "-") < 0) return -1;
        return put_u64(b, (unsigned long long)(-(v + 1)) + 1);
    }
    return put_u64(b, (unsigned long long)v);
}

static inline int put_v4(Buf *b, const unsigned char *a) {
    char *o = b->p + b->len;
    for (int k = 0; k < 4; k++) {
        unsigned v = a[k];
        if (k) *o++ = '.';
        if (v >= 100) { *o++ = (char)('0' + v / 100); v %= 100; *o++ = (char)('0' + v / 10); *o++ = (char)('0' + v % 10); }
        else if (v >= 10) { *o++ = (char)('0' + v / 10); *o++ = (char)('0' + v % 10); }
        else *o++ = (char)('0' + v);
    }
    b->len = o - b->p;
    return 0;
}

/* An exact int in [lo, hi] (as long long), or -1 with *ok = 0 when it is not one. */
static long long get_ll(PyObject *o, int *ok) {
    if (!PyLong_CheckExact(o)) { *ok = 0; return 0; }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) { PyErr_Clear(); *ok = 0; return 0; }
    return v;
}

/* A counter: saturated at 2**64 - 1 as the payload promises; *ok = 0 for a negative or odd value. */
static unsigned long long get_counter(PyObject *o, int *ok) {
    if (!PyLong_CheckExact(o)) { *ok = 0; return 0; }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(o);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); return UINT64_MAX; }
        return u;
    }
    if (overflow < 0 || v < 0 || (v == -1 && PyErr_Occurred())) { PyErr_Clear(); *ok = 0; return 0; }
    return (unsigned long long)v;
}

/* Field f as an int (see get_ll). */
static inline long long row_ll(const Row *r, int f, int *ok) {
    return r->o[f] ? get_ll(r->o[f], ok) : r->ll[f];
}

/* Field f as a counter (see get_counter). */
static inline unsigned long long row_counter(const Row *r, int f, int *ok) {
    if (r->o[f]) return get_counter(r->o[f], ok);
    if (r->ll[f] < 0) { *ok = 0; return 0; }
    return (unsigned long long)r->ll[f];
}

/* Address field f's bytes; 0 when it is not a bytes object. */
static inline int row_address(const Row *r, int f, const unsigned char **a, Py_ssize_t *n) {
    if (!r->o[f]) { *a = r->raw[f]; *n = r->rawlen[f]; return 1; }
    if (!PyBytes_CheckExact(r->o[f])) return 0;
    *a = (const unsigned char *)PyBytes_AS_STRING(r->o[f]);
    *n = PyBytes_GET_SIZE(r->o[f]);
    return 1;
}

/* Field f as an object (made from an array's value where it came from one); a new reference. */
static PyObject *row_object(const Row *r, int f) {
    if (r->o[f]) { Py_INCREF(r->o[f]); return r->o[f]; }
    if (r->raw[f]) return PyBytes_FromStringAndSize((const char *)r->raw[f], r->rawlen[f]);
    return PyLong_FromLongLong(r->ll[f]);
}

/* cache[key], else helper(*args) stored in cache, first emptied when it holds ``limit`` entries (what
 * flowpipe.cache.bounded_put does; the limit is the renderer's CACHE_LIMIT, helpers.limit); a new
 * reference, NULL on error. */
static PyObject *cached(PyObject *cache, Py_ssize_t limit, PyObject *key, PyObject *helper, PyObject *arg2) {
    PyObject *v = PyDict_GetItemWithError(cache, key);
    if (v) { Py_INCREF(v); return v; }
    if (PyErr_Occurred()) return NULL;
    v = arg2 ? PyObject_CallFunctionObjArgs(helper, key, arg2, NULL) : PyObject_CallOneArg(helper, key);
    if (!v) return NULL;
    if (PyDict_Size(cache) >= limit) PyDict_Clear(cache);
    if (PyDict_SetItem(cache, key, v) < 0) { Py_DECREF(v); return NULL; }
    return v;
}

/* The last key a cache was asked for and its value, both held: consecutive flows mostly share their
 * type, ether type, namespace and exporter objects, and a pointer compare is cheaper than a lookup. */
typedef struct {
    PyObject *key, *value;
} Memo;

static void memo_clear(Memo *m) {
    Py_CLEAR(m->key);
    Py_CLEAR(m->value);
}

typedef struct {
    PyObject *quote, *strs;            /* str -> JSON string (orjson.dumps), cached in strs */
    PyObject *device, *devices;        /* namespace -> {"namespace": ...} */
    PyObject *exporter, *exporters;    /* exporter -> {"ip": ...} */
    PyObject *ether, *ethers;          /* ether type -> JSON name */
    PyObject *address;                 /* (raw, bits) -> (ip JSON, mask JSON), non-IPv4 */
    PyObject *next_hop, *next_hops;    /* raw -> {"ip": ...}, non-IPv4 */
    PyObject *extras;                  /* extras dict -> ',"additional_fields":{...}' */
    PyObject *seen_extras;             /* of this call: id(extras dict) -> its text (dicts are shared, never changed) */
    PyObject *flow;                    /* a whole flow the loop cannot write -> JSON */
    PyObject *protos, *flags;          /* tuples of 256 JSON texts */
    Py_ssize_t limit;                  /* entries a cache holds at most (flowpipe.render.payload.CACHE_LIMIT) */
    int mp;                            /* write msgpack, not JSON */
    Memo memo[4];                      /* put_cached's last type, ether type, namespace, exporter */
    Memo next_hop_memo;                /* ... and next hop (not IPv4) */
} Helpers;

/* ---- the two encodings (into room reserved; never fail) */

/* A msgpack unsigned / signed integer in its shortest form, as msgpack-python packs a Python int. */
static inline int mp_uint(Buf *b, unsigned long long v) {
    unsigned char *o = (unsigned char *)b->p + b->len;
    int n;
    if (v < 128) { o[0] = (unsigned char)v; n = 1; }
    else if (v <= 0xFF) { o[0] = 0xcc; o[1] = (unsigned char)v; n = 2; }
    else if (v <= 0xFFFF) { o[0] = 0xcd; n = 3; }
    else if (v <= 0xFFFFFFFFULL) { o[0] = 0xce; n = 5; }
    else { o[0] = 0xcf; n = 9; }
    for (int k = n - 1, sh = 0; n > 2 && k >= 1; k--, sh += 8) o[k] = (unsigned char)(v >> sh);
    b->len += n;
    return 0;
}

static inline int mp_int(Buf *b, long long v) {
    if (v >= 0) return mp_uint(b, (unsigned long long)v);
    unsigned char *o = (unsigned char *)b->p + b->len;
    unsigned long long u = (unsigned long long)v;
    int n;
    if (v >= -32) { o[0] = (unsigned char)v; n = 1; }
    else if (v >= -128) { o[0] = 0xd0; o[1] = (unsigned char)v; n = 2; }
    else if (v >= -32768) { o[0] = 0xd1; n = 3; }
    else if (v >= -2147483648LL) { o[0] = 0xd2; n = 5; }
    else { o[0] = 0xd3; n = 9; }
    for (int k = n - 1, sh = 0; n > 2 && k >= 1; k--, sh += 8) o[k] = (unsigned char)(u >> sh);
    b->len += n;
    return 0;
}

static inline int put_int(Buf *b, int mp, long long v) { return mp ? mp_int(b, v) : put_i64(b, v); }
static inline int put_uint(Buf *b, int mp, unsigned long long v) { return mp ? mp_uint(b, v) : put_u64(b, v); }

/* One byte (a msgpack header), into room reserved. */
static inline int PUTC(Buf *b, int c) { b->p[b->len++] = (char)c; return 0; }
/* A map's key (a literal under 32 bytes): JSON ',"name":' (FIRST_KEY: '{"name":'), msgpack a fixstr. */
#define KEY(b, mp, name) ((mp) ? (PUTC(b, 0xa0 | (int)(sizeof(name) - 1)), PUTS(b, name)) : PUTS(b, ",\"" name "\":"))
#define FIRST_KEY(b, mp, name) ((mp) ? (PUTC(b, 0xa0 | (int)(sizeof(name) - 1)), PUTS(b, name)) : PUTS(b, "{\"" name "\":"))
/* A map of n entries: JSON's '{' is written by its first key, msgpack's fixmap header here. */
#define MAP(b, mp, n) ((mp) ? PUTC(b, 0x80 | (n)) : 0)
#define END_MAP(b, mp) ((mp) ? 0 : PUTS(b, "}"))
/* A short string written in place (under 32 bytes): STR_OPEN gives where it starts, STR_CLOSE ends it
 * (JSON quotes; msgpack a fixstr header patched with the length). */
static inline Py_ssize_t STR_OPEN(Buf *b, int mp) { Py_ssize_t at = b->len; PUTC(b, mp ? 0xa0 : '"'); return at; }
static inline int STR_CLOSE(Buf *b, int mp, Py_ssize_t at) {
    if (mp) b->p[at] = (char)(0xa0 | (b->len - at - 1));
    else PUTC(b, '"');
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* ',"ip":..,"port":..,"mac":..,"mask":..' part of source/destination; 1 written, 0 not writable, -1 error */
static int put_endpoint(Buf *b, Helpers *h, const Row *row, int ip, PyObject *bits_o, int port_f, PyObject *mac_o,
                        PyObject *hostnames) {
    int ok = 1;
    long long bits = get_ll(bits_o, &ok);
    long long port = row_ll(row, port_f, &ok);
    long long mac = get_ll(mac_o, &ok);
    const unsigned char *a;
    Py_ssize_t n;
    if (!ok || !row_address(row, ip, &a, &n) || mac < 0) return 0;
    int mp = h->mp;
    Py_ssize_t head = b->len, at;  /* (msgpack: the map header, 4 entries or 5 with a name) */
    if (MAP(b, mp, 4) < 0 || FIRST_KEY(b, mp, "ip") < 0) return -1;
    PyObject *mask_json = NULL;
    if (n == 4 && bits >= 0 && bits <= 32) {
        at = STR_OPEN(b, mp);
        if (put_v4(b, a) < 0 || STR_CLOSE(b, mp, at) < 0) return -1;
    } else {
        PyObject *raw = row_object(row, ip);
        if (!raw) return -1;
        PyObject *pair = PyObject_CallFunctionObjArgs(h->address, raw, bits_o, NULL);
        Py_DECREF(raw);
        if (!pair) return -1;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) { Py_DECREF(pair); return 0; }
        int r = put_bytes(b, PyTuple_GET_ITEM(pair, 0));
        mask_json = PyTuple_GET_ITEM(pair, 1);
        Py_INCREF(mask_json);
        Py_DECREF(pair);
        if (r < 0) { Py_DECREF(mask_json); return -1; }
    }
    if (KEY(b, mp, "port") < 0) goto fail;
    at = STR_OPEN(b, mp);
    if (port < 0) { if (PUTS(b, "*") < 0) goto fail; }
    else if (put_u64(b, (unsigned long long)port) < 0) goto fail;
    if (STR_CLOSE(b, mp, at) < 0 || KEY(b, mp, "mac") < 0) goto fail;
    at = STR_OPEN(b, mp);
    {
        char m[17];
        unsigned long long v = (unsigned long long)mac & 0xFFFFFFFFFFFFULL;
        for (int k = 0; k < 6; k++) {
            unsigned octet = (unsigned)((v >> (8 * (5 - k))) & 0xFF);
            m[3 * k] = HEX[octet >> 4];
            m[3 * k + 1] = HEX[octet & 15];
            if (k < 5) m[3 * k + 2] = ':';
        }
        if (put(b, m, 17) < 0) goto fail;
    }
    if (STR_CLOSE(b, mp, at) < 0 || KEY(b, mp, "mask") < 0) goto fail;
    if (mask_json) {
        if (put_bytes(b, mask_json) < 0) goto fail;
        Py_CLEAR(mask_json);
    } else {
        unsigned long long v = ((unsigned long long)a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3];
        unsigned long long m = bits ? (0xFFFFFFFFULL << (32 - bits)) & 0xFFFFFFFFULL : 0;
        unsigned char net[4] = {(unsigned char)((v & m) >> 24), (unsigned char)((v & m) >> 16),
                                (unsigned char)((v & m) >> 8), (unsigned char)(v & m)};
        at = STR_OPEN(b, mp);
        if (put_v4(b, net) < 0 || PUTS(b, "/") < 0 || put_u64(b, (unsigned long long)bits) < 0
            || STR_CLOSE(b, mp, at) < 0)
            goto fail;
    }
    if (hostnames != Py_None) {
        PyObject *raw = row_object(row, ip);
        if (!raw) goto fail;
        PyObject *name = PyDict_GetItemWithError(hostnames, raw);
        Py_DECREF(raw);  /* (name, if any, is held by hostnames) */
        if (!name && PyErr_Occurred()) goto fail;
        if (name) {
            int truth = PyObject_IsTrue(name);
            if (truth < 0) goto fail;
            if (truth) {
                if (!PyUnicode_Check(name)) return 0;
                PyObject *q = cached(h->strs, h->limit, name, h->quote, NULL);
                if (!q) goto fail;
                if (mp) b->p[head] = (char)(0x80 | 5);
                int r = KEY(b, mp, "reverse_dns_hostname") < 0 ? -1 : put_bytes(b, q);
                Py_DECREF(q);
                if (r < 0) goto fail;
            }
        }
    }
    if (END_MAP(b, mp) < 0) goto fail;
    return 1;
fail:
    Py_XDECREF(mask_json);
    return -1;
}

static int put_cached(Buf *b, Py_ssize_t limit, PyObject *cache, PyObject *key, PyObject *helper, Memo *m) {
    if (key == m->key) return put_bytes(b, m->value);
    PyObject *v = cached(cache, limit, key, helper, NULL);
    if (!v) return -1;
    int r = put_bytes(b, v);
    memo_clear(m);
    Py_INCREF(key);
    m->key = key;
    m->value = v;  /* (the reference cached() gave) */
    return r;
}

/* One flow; 1 written, 0 to be rendered by helpers.flow, -1 error. */
static int put_flow(Buf *b, Helpers *h, const Row *row, PyObject *head, PyObject *host, PyObject *hostnames,
                    PyObject *tags_only) {
    PyObject *const *v = row->o;  /* the kept fields and the extras are always objects */
    int ok = 1;
    long long rate = get_ll(v[SAMPLING_RATE], &ok), start = row_ll(row, START, &ok), end = row_ll(row, END, &ok);
    long long proto = row_ll(row, IP_PROTOCOL, &ok), in_if = row_ll(row, IN_IF, &ok), out_if = get_ll(v[OUT_IF], &ok);
    long long fl = row_ll(row, TCP_FLAGS, &ok);
    unsigned long long nbytes = row_counter(row, BYTES, &ok), npackets = row_counter(row, PACKETS, &ok);
    if (!ok || proto < 0 || proto > 255 || !PyUnicode_CheckExact(v[TYPE]) || !PyUnicode_CheckExact(v[EXPORTER])
        || !PyUnicode_CheckExact(v[NAMESPACE]) || !PyLong_CheckExact(v[DIRECTION]) || !PyLong_CheckExact(v[ETHER_TYPE])
        || !PyBytes_CheckExact(v[NEXT_HOP]))
        return 0;
    PyObject *extras = v[EXTRAS];
    int has = extras != Py_None && PyObject_IsTrue(extras);
    if (has < 0) return -1;
    Py_ssize_t mark = b->len, at;
    int r, mp = h->mp;
    if (buf_grow(b, RESERVE) < 0) return -1;
    if (mp && (PUTC(b, 0xde) < 0 || PUTC(b, 0) < 0 || PUTC(b, 19 + (has || PyBytes_GET_SIZE(tags_only))) < 0))
        return -1;  /* map16: 19 entries, 20 with additional fields */
    if (put_bytes(b, head) < 0) return -1;
    if (put_cached(b, h->limit, h->strs, v[TYPE], h->quote, &h->memo[0]) < 0) return -1;
    if (KEY(b, mp, "sampling_rate") < 0 || put_int(b, mp, rate) < 0) return -1;
    r = get_ll(v[DIRECTION], &ok) == 1;
    if (KEY(b, mp, "direction") < 0) return -1;
    at = STR_OPEN(b, mp);
    if ((r ? PUTS(b, "egress") : PUTS(b, "ingress")) < 0 || STR_CLOSE(b, mp, at) < 0) return -1;
    if (KEY(b, mp, "start") < 0 || put_int(b, mp, start) < 0) return -1;
    if (KEY(b, mp, "end") < 0 || put_int(b, mp, end) < 0) return -1;
    if (KEY(b, mp, "bytes") < 0 || put_uint(b, mp, nbytes) < 0) return -1;
    if (KEY(b, mp, "packets") < 0 || put_uint(b, mp, npackets) < 0) return -1;
    if (KEY(b, mp, "ether_type") < 0 || put_cached(b, h->limit, h->ethers, v[ETHER_TYPE], h->ether, &h->memo[1]) < 0) return -1;
    if (KEY(b, mp, "ip_protocol") < 0 || put_bytes(b, PyTuple_GET_ITEM(h->protos, proto)) < 0) return -1;
    if (KEY(b, mp, "device") < 0 || put_cached(b, h->limit, h->devices, v[NAMESPACE], h->device, &h->memo[2]) < 0) return -1;
    if (KEY(b, mp, "exporter") < 0 || put_cached(b, h->limit, h->exporters, v[EXPORTER], h->exporter, &h->memo[3]) < 0) return -1;
    if (KEY(b, mp, "source") < 0) return -1;
    r = put_endpoint(b, h, row, SRC_IP, v[SRC_MASK], SRC_PORT, v[SRC_MAC], hostnames);
    if (r <= 0) { b->len = mark; return r; }
    if (KEY(b, mp, "destination") < 0) return -1;
    r = put_endpoint(b, h, row, DST_IP, v[DST_MASK], DST_PORT, v[DST_MAC], hostnames);
    if (r <= 0) { b->len = mark; return r; }
    for (int side = 0; side < 2; side++) {  /* {"interface": {"index": n}} */
        if ((side ? KEY(b, mp, "egress") : KEY(b, mp, "ingress")) < 0 || MAP(b, mp, 1) < 0
            || FIRST_KEY(b, mp, "interface") < 0 || MAP(b, mp, 1) < 0 || FIRST_KEY(b, mp, "index") < 0
            || put_int(b, mp, side ? out_if : in_if) < 0 || END_MAP(b, mp) < 0 || END_MAP(b, mp) < 0)
            return -1;
    }
    if (KEY(b, mp, "host") < 0 || put_bytes(b, host) < 0) return -1;
    if (KEY(b, mp, "tcp_flags") < 0 || put_bytes(b, PyTuple_GET_ITEM(h->flags, fl & 0xFF)) < 0) return -1;
    if (KEY(b, mp, "next_hop") < 0) return -1;
    if (PyBytes_GET_SIZE(v[NEXT_HOP]) == 4) {
        if (MAP(b, mp, 1) < 0 || FIRST_KEY(b, mp, "ip") < 0) return -1;
        at = STR_OPEN(b, mp);
        if (put_v4(b, (const unsigned char *)PyBytes_AS_STRING(v[NEXT_HOP])) < 0 || STR_CLOSE(b, mp, at) < 0
            || END_MAP(b, mp) < 0)
            return -1;
    } else if (put_cached(b, h->limit, h->next_hops, v[NEXT_HOP], h->next_hop, &h->next_hop_memo) < 0) {
        return -1;
    }
    if (has) {
        PyObject *id = PyLong_FromVoidPtr(extras);  /* the batch holds every dict: ids stay theirs */
        if (!id) return -1;
        PyObject *e = PyDict_GetItemWithError(h->seen_extras, id);
        if (e) {
            Py_INCREF(e);
        } else if (!PyErr_Occurred() && (e = PyObject_CallOneArg(h->extras, extras))
                   && PyDict_SetItem(h->seen_extras, id, e) < 0) {
            Py_CLEAR(e);
        }
        Py_DECREF(id);
        if (!e) return -1;
        r = put_bytes(b, e);
        Py_DECREF(e);
        if (r < 0) return -1;
    } else if (put_bytes(b, tags_only) < 0) {
        return -1;
    }
    return END_MAP(b, mp) < 0 ? -1 : 1;
}

static int get_helper(PyObject *helpers, const char *name, PyObject **out) {
    *out = PyObject_GetAttrString(helpers, name);
    return *out ? 0 : -1;
}

static void helpers_clear(Helpers *h) {
    PyObject **all[] = {&h->quote, &h->strs, &h->device, &h->devices, &h->exporter, &h->exporters, &h->ether,
                        &h->ethers, &h->address, &h->next_hop, &h->next_hops, &h->extras, &h->seen_extras, &h->flow,
                        &h->protos, &h->flags};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) Py_CLEAR(*all[i]);
    for (int k = 0; k < 4; k++) memo_clear(&h->memo[k]);
    memo_clear(&h->next_hop_memo);
}

/* A column: a list of objects, or an array read in place (see the module doc). */
typedef struct {
    PyObject *list;   /* borrowed; NULL for an array */
    Py_buffer view;   /* an array's (held while view.obj is set) */
} Col;

/* Column ``o`` of n items; ``addresses``: an array of it holds 4- or 16-byte values, else int64. */
static int col_open(Col *c, PyObject *o, Py_ssize_t n, int addresses, const char *name) {
    c->list = NULL;
    c->view.obj = NULL;
    if (PyList_CheckExact(o)) {
        if (PyList_GET_SIZE(o) == n) { c->list = o; return 0; }
    } else if (PyObject_CheckBuffer(o) && PyObject_GetBuffer(o, &c->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        const char *f = c->view.format ? c->view.format : "B";
        if (*f == '<' || *f == '=' || *f == '@') f++;
        int fits = c->view.ndim == 1 && c->view.shape && c->view.shape[0] == n
                   && (addresses ? (c->view.itemsize == 4 || c->view.itemsize == 16)
                                 : (c->view.itemsize == 8 && (strcmp(f, "q") == 0 || strcmp(f, "l") == 0)));
        if (fits) return 0;
        PyBuffer_Release(&c->view);
        c->view.obj = NULL;
    }
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_BufferError))
        return -1;  /* (a MemoryError stays one) */
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "column %s must be a list of %zd items or an array of as many %s", name, n,
                 addresses ? "4- or 16-byte addresses" : "int64");
    return -1;
}

static void col_close(Col *c) {
    if (c->view.obj) PyBuffer_Release(&c->view);
    c->view.obj = NULL;
}

/* Row i of column c into field f of ``r``. */
static inline void col_get(const Col *c, Py_ssize_t i, Row *r, int f) {
    if (c->list) {
        r->o[f] = PyList_GET_ITEM(c->list, i);
    } else if (f != SRC_IP && f != DST_IP) {
        r->o[f] = NULL;
        r->raw[f] = NULL;
        memcpy(&r->ll[f], (const char *)c->view.buf + i * 8, 8);  /* (any alignment) */
    } else {
        r->o[f] = NULL;
        r->rawlen[f] = c->view.itemsize;
        r->raw[f] = (const unsigned char *)c->view.buf + i * c->view.itemsize;
    }
}

/* The flow as a list laid out as Flow (for helpers.flow); NULL on error. */
static PyObject *flow_list(const Row *r) {
    PyObject *f = PyList_New(N_FIELDS);
    if (!f) return NULL;
    for (int k = 0; k < N_FIELDS; k++) {
        PyObject *x = row_object(r, k);
        if (!x) { Py_DECREF(f); return NULL; }
        PyList_SET_ITEM(f, k, x);
    }
    return f;
}

static PyObject *render(PyObject *self, PyObject *args) {
    PyObject *key, *kept, *other[N_OTHER], *head, *host, *hostnames, *tags_only, *helpers;
    int joined = 0, mp = 0;
    if (!PyArg_ParseTuple(args, "O!O!OOOOOOSSOSO|pp:render", &PyList_Type, &key, &PyList_Type, &kept, &other[0],
                          &other[1], &other[2], &other[3], &other[4], &other[5], &head, &host, &hostnames, &tags_only,
                          &helpers, &joined, &mp))
        return NULL;
    if (hostnames != Py_None && !PyDict_Check(hostnames)) {
        PyErr_SetString(PyExc_TypeError, "hostnames must be a dict or None");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(kept);
    if (PyList_GET_SIZE(key) != N_KEY) {
        PyErr_SetString(PyExc_TypeError, "key must hold nine columns");
        return NULL;
    }
    Col cols[N_KEY + N_OTHER];
    int opened = 0;
    for (; opened < N_KEY + N_OTHER; opened++) {
        int f = opened < N_KEY ? KEY_FIELDS[opened] : OTHER_FIELDS[opened - N_KEY];
        PyObject *o = opened < N_KEY ? PyList_GET_ITEM(key, opened) : other[opened - N_KEY];
        int lists_only = f == NAMESPACE || f == EXPORTER || f == EXTRAS;
        if (col_open(&cols[opened], o, n, f == SRC_IP || f == DST_IP, opened < N_KEY ? "key" : "of counters") < 0
            || (lists_only && !cols[opened].list)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "namespace, exporter and extras must be lists");
            while (opened >= 0) col_close(&cols[opened--]);
            return NULL;
        }
    }
    Helpers h = {0};
    h.mp = mp;
    if (get_helper(helpers, "quote", &h.quote) < 0 || get_helper(helpers, "strs", &h.strs) < 0
        || get_helper(helpers, "device", &h.device) < 0 || get_helper(helpers, "devices", &h.devices) < 0
        || get_helper(helpers, "exporter", &h.exporter) < 0 || get_helper(helpers, "exporters", &h.exporters) < 0
        || get_helper(helpers, "ether", &h.ether) < 0 || get_helper(helpers, "ethers", &h.ethers) < 0
        || get_helper(helpers, "address", &h.address) < 0 || get_helper(helpers, "next_hop", &h.next_hop) < 0
        || get_helper(helpers, "next_hops", &h.next_hops) < 0 || get_helper(helpers, "extras", &h.extras) < 0
        || get_helper(helpers, "flow", &h.flow) < 0 || get_helper(helpers, "protos", &h.protos) < 0
        || get_helper(helpers, "flags", &h.flags) < 0)
        goto early;
    if (!(h.seen_extras = PyDict_New()))
        goto early;
    PyObject *limit = PyObject_GetAttrString(helpers, "limit");
    if (!limit)
        goto early;
    h.limit = PyLong_Check(limit) ? PyLong_AsSsize_t(limit) : -1;
    Py_DECREF(limit);
    if (h.limit < 0) PyErr_Clear();
    if (h.limit < 0 || !PyDict_Check(h.strs) || !PyDict_Check(h.devices) || !PyDict_Check(h.exporters) || !PyDict_Check(h.ethers)
        || !PyDict_Check(h.next_hops) || !PyTuple_Check(h.protos) || PyTuple_GET_SIZE(h.protos) != 256
        || !PyTuple_Check(h.flags) || PyTuple_GET_SIZE(h.flags) != 256) {
        PyErr_SetString(PyExc_TypeError, "bad helpers");
        goto early;
    }
    PyObject *out = joined ? NULL : PyList_New(n);
    Buf b = {0};
    if (!joined && !out) goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        Row row;
        PyObject *t = PyList_GET_ITEM(kept, i), *item;
        if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != N_KEPT) {
            PyErr_SetString(PyExc_TypeError, "kept fields must be a tuple of ten");
            goto error;
        }
        for (int k = 0; k < N_KEY; k++) col_get(&cols[k], i, &row, KEY_FIELDS[k]);
        for (int k = 0; k < N_KEPT; k++) row.o[KEPT_FIELDS[k]] = PyTuple_GET_ITEM(t, k);
        for (int k = 0; k < N_OTHER; k++) col_get(&cols[N_KEY + k], i, &row, OTHER_FIELDS[k]);
        if (!joined)
            b.len = 0;
        else if (i && !mp && put(&b, ",", 1) < 0)
            goto error;
        Py_ssize_t start = b.len;
        int r = put_flow(&b, &h, &row, head, host, hostnames, tags_only);
        if (r < 0) goto error;
        if (r) {
            if (joined) continue;
            item = PyBytes_FromStringAndSize(b.p, b.len);
        } else {
            b.len = start;  /* what was written of it goes: the helper renders it whole */
            PyObject *f = flow_list(&row);
            item = f ? PyObject_CallOneArg(h.flow, f) : NULL;
            Py_XDECREF(f);
            if (item && joined) {
                int bad = !PyBytes_Check(item) || put_bytes(&b, item) < 0;
                if (bad && !PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "helpers.flow must give bytes");
                Py_DECREF(item);
                if (bad) goto error;
                continue;
            }
        }
        if (!item) goto error;
        PyList_SET_ITEM(out, i, item);
    }
    if (joined)
        out = PyBytes_FromStringAndSize(b.p ? b.p : "", b.len);
    PyMem_Free(b.p);
    helpers_clear(&h);
    for (int k = 0; k < N_KEY + N_OTHER; k++) col_close(&cols[k]);
    return out;
error:
    PyMem_Free(b.p);
    Py_XDECREF(out);
early:
    helpers_clear(&h);
    for (int k = 0; k < N_KEY + N_OTHER; k++) col_close(&cols[k]);
    return NULL;
}

static PyMethodDef methods[] = {
    {"render", render, METH_VARARGS,
     "Aggregated flows -> their payload objects as JSON texts (see the module doc); joined: one text, the flows"
     " separated by commas."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jsonflows", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jsonflows(void) { return PyModule_Create(&module); }
