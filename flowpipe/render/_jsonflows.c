/* Payload JSON straight from aggregated flows: the renderer's hot loop, compiled.
 *
 * layout(n_fields, key, kept, other, addresses, objects, members): set once, from flowpipe.flow.SCHEMA and
 *        flowpipe.render.fields.PAYLOAD (flowpipe/render/jsontext.py): which fields the columns hold and the
 *        payload's members in order, each written by one of the formats below
 * render(key, kept, other, flush_ms, host, hostnames, tags_only, helpers[, joined[, msgpack]]) -> list[bytes]
 *        (joined: bytes, the texts separated by commas: a JSON array's inside; msgpack: each flow as
 *        msgpack.packb(object, use_bin_type=True) makes it, joined with nothing between: a msgpack array's inside)
 *
 * The flows come as the columns of flowpipe.flow.FlowColumns: key (the KEY fields' columns), kept
 * (a list: a tuple of the KEPT fields per flow) and the other columns. A column is a list of objects; the
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
 * JSON), the members' keys their msgpack ones, and the loop writes msgpack where it writes JSON: the same walk, each piece in the other encoding (the KEY, STR_OPEN/STR_CLOSE, put_int and
 * put_uint writers below take the mode).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The layout, set once by layout() from flowpipe.flow.SCHEMA and flowpipe.render.fields.PAYLOAD (see
 * flowpipe/render/jsontext.py): how many fields a flow has, which fields the key columns, the kept
 * tuples and the other columns hold, which fields are addresses (an array column of them holds 4- or
 * 16-byte values) and which come only as objects; and the payload's members in order, each a format
 * (below), its key in both encodings and the fields it shows. Nothing renders before it is set. */
#define MAX_FIELDS 64
#define MAX_COLUMNS 32
#define MAX_OPS 32
enum { F_FLUSH, F_TEXT, F_INT, F_DIRECTION, F_COUNTER, F_ETHER, F_PROTOCOL, F_DEVICE, F_EXPORTER, F_ENDPOINT,
       F_INTERFACE, F_HOST, F_FLAGS, F_NEXT_HOP, F_EXTRAS, N_FORMATS };
static const char *const FORMAT_NAMES[N_FORMATS] = {
    "flush", "text", "int", "direction", "counter", "ether", "protocol", "device", "exporter", "endpoint",
    "interface", "host", "flags", "next_hop", "extras"};
static const int FORMAT_FIELDS[N_FORMATS] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 0, 1, 1, 1};

#define MAX_KEY 40  /* bytes of a member's key in either encoding (msgpack's fixstr: a name under 32) */
typedef struct {
    int format;
    char key[2][MAX_KEY];  /* the member's key: JSON ('{"name":' first, else ',"name":'), msgpack (a fixstr) */
    int key_len[2];
    int f[4];              /* its fields (an endpoint's: address, mask bits, MAC, port) */
} Op;

static struct {
    int set, n_fields, n_key, n_kept, n_other, n_ops, extras;  /* extras: the additional fields' field */
    int key[MAX_COLUMNS], kept[MAX_COLUMNS], other[MAX_COLUMNS];
    char address[MAX_FIELDS], object_only[MAX_FIELDS];
    Op ops[MAX_OPS];
} L;

/* One flow's values: each field as an object (o), or, for the fields read from an array column (o
 * NULL), an int64 (ll) or an address's bytes in the array (raw, rawlen). */
typedef struct {
    PyObject *o[MAX_FIELDS];
    long long ll[MAX_FIELDS];
    const unsigned char *raw[MAX_FIELDS];
    Py_ssize_t rawlen[MAX_FIELDS];
} Row;

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

/* Room for ``more`` bytes; the fixed-size pieces below are written unchecked after one reserve of
 * RESERVE bytes per flow (the longest fixed part of a flow is far below it, with at most MAX_OPS
 * keys of MAX_KEY bytes), helper-made pieces
 * (names, extras, IPv6) through put() with its own check. */
#define RESERVE 4096

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
    Memo memo[MAX_OPS];                /* put_cached's last key and value, per payload member */
    PyObject *cache[N_FORMATS], *helper[N_FORMATS];  /* (borrowed) of the formats whose pieces are cached */
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
static int put_endpoint(Buf *b, Helpers *h, const Row *row, const int *f, PyObject *hostnames) {
    int ok = 1, ip = f[0];  /* (fields: address, mask bits, MAC, port) */
    long long bits = row_ll(row, f[1], &ok);
    long long mac = row_ll(row, f[2], &ok);
    long long port = row_ll(row, f[3], &ok);
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
        PyObject *raw = row_object(row, ip), *bits_o = raw ? row_object(row, f[1]) : NULL;
        if (!bits_o) { Py_XDECREF(raw); return -1; }
        PyObject *pair = PyObject_CallFunctionObjArgs(h->address, raw, bits_o, NULL);
        Py_DECREF(raw);
        Py_DECREF(bits_o);
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

/* Field f as an object of exactly this type (borrowed), NULL when it is not one (or came from an array). */
static inline PyObject *row_exact(const Row *r, int f, PyTypeObject *type) {
    PyObject *o = r->o[f];
    return o && Py_IS_TYPE(o, type) ? o : NULL;
}

/* One flow, member by member as the layout says; 1 written, 0 to be rendered by helpers.flow, -1 error. */
static int put_flow(Buf *b, Helpers *h, const Row *row, const Buf *flush, PyObject *host, PyObject *hostnames,
                    PyObject *tags_only) {
    PyObject *extras = L.extras >= 0 ? row->o[L.extras] : Py_None;
    int has = extras && extras != Py_None ? PyObject_IsTrue(extras) : 0;
    if (has < 0) return -1;
    int mp = h->mp, ok = 1, r;
    Py_ssize_t at;
    if (buf_grow(b, RESERVE) < 0) return -1;
    if (mp) {  /* a map of its members, the additional fields only when there are some: fixmap under 16, map16 */
        int count = L.n_ops - (L.extras >= 0) + (has || PyBytes_GET_SIZE(tags_only));
        if (count < 16) PUTC(b, 0x80 | count);
        else PUTC(b, 0xde), PUTC(b, 0), PUTC(b, count);
    }
    for (int k = 0; k < L.n_ops; k++) {
        const Op *op = &L.ops[k];
        int f = op->f[0];
        PyObject *o;
        if (op->format == F_EXTRAS) {  /* (the helpers' texts carry the key: the member is there or not) */
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
            continue;
        }
        memcpy(b->p + b->len, op->key[mp], MAX_KEY);  /* (a fixed size: a few moves, into room reserved; */
        b->len += op->key_len[mp];                     /* what is past the key is written over next) */
        switch (op->format) {
        case F_FLUSH:  /* (the call's flush time, written once) */
            memcpy(b->p + b->len, flush->p, 24);  /* (its buffer's size; see MAX_KEY) */
            b->len += flush->len;
            r = 0;
            break;
        case F_HOST:
            r = put_bytes(b, host);
            break;
        case F_INT: {
            long long v = row_ll(row, f, &ok);
            if (!ok) return 0;
            r = put_int(b, mp, v);
            break;
        }
        case F_COUNTER: {  /* saturated at 2**64 - 1 */
            unsigned long long v = row_counter(row, f, &ok);
            if (!ok) return 0;
            r = put_uint(b, mp, v);
            break;
        }
        case F_DIRECTION: {
            long long v = row_ll(row, f, &ok);
            if (!ok) return 0;
            at = STR_OPEN(b, mp);
            r = ((v == 1 ? PUTS(b, "egress") : PUTS(b, "ingress")) < 0 || STR_CLOSE(b, mp, at) < 0) ? -1 : 0;
            break;
        }
        case F_PROTOCOL: {
            long long v = row_ll(row, f, &ok);
            if (!ok || v < 0 || v > 255) return 0;
            r = put_bytes(b, PyTuple_GET_ITEM(h->protos, v));
            break;
        }
        case F_FLAGS: {
            long long v = row_ll(row, f, &ok);
            if (!ok) return 0;
            r = put_bytes(b, PyTuple_GET_ITEM(h->flags, v & 0xFF));
            break;
        }
        case F_TEXT: case F_DEVICE: case F_EXPORTER: case F_ETHER:  /* a piece the helper makes, cached per value */
            if (!(o = row_exact(row, f, op->format == F_ETHER ? &PyLong_Type : &PyUnicode_Type))) return 0;
            r = put_cached(b, h->limit, h->cache[op->format], o, h->helper[op->format], &h->memo[k]);
            break;
        case F_ENDPOINT:
            r = put_endpoint(b, h, row, op->f, hostnames);
            if (r <= 0) return r;
            r = 0;
            break;
        case F_INTERFACE: {  /* {"interface": {"index": n}} */
            long long v = row_ll(row, f, &ok);
            if (!ok) return 0;
            r = (MAP(b, mp, 1) < 0 || FIRST_KEY(b, mp, "interface") < 0 || MAP(b, mp, 1) < 0
                 || FIRST_KEY(b, mp, "index") < 0 || put_int(b, mp, v) < 0 || END_MAP(b, mp) < 0
                 || END_MAP(b, mp) < 0) ? -1 : 0;
            break;
        }
        case F_NEXT_HOP:  /* {"ip": ...}: IPv4 written here, others by the helper (cached) */
            if (!(o = row_exact(row, f, &PyBytes_Type))) return 0;
            if (PyBytes_GET_SIZE(o) == 4) {
                if (MAP(b, mp, 1) < 0 || FIRST_KEY(b, mp, "ip") < 0) return -1;
                at = STR_OPEN(b, mp);
                r = (put_v4(b, (const unsigned char *)PyBytes_AS_STRING(o)) < 0 || STR_CLOSE(b, mp, at) < 0
                     || END_MAP(b, mp) < 0) ? -1 : 0;
            } else {
                r = put_cached(b, h->limit, h->next_hops, o, h->next_hop, &h->memo[k]);
            }
            break;
        default:
            r = -1;
            PyErr_SetString(PyExc_SystemError, "payload layout: unknown format");
        }
        if (r < 0) return -1;
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
    for (int k = 0; k < MAX_OPS; k++) memo_clear(&h->memo[k]);
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
    } else if (!L.address[f]) {
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
    PyObject *f = PyList_New(L.n_fields);
    if (!f) return NULL;
    for (int k = 0; k < L.n_fields; k++) {
        PyObject *x = row_object(r, k);
        if (!x) { Py_DECREF(f); return NULL; }
        PyList_SET_ITEM(f, k, x);
    }
    return f;
}

static PyObject *render(PyObject *self, PyObject *args) {
    PyObject *key, *kept, *other, *host, *hostnames, *tags_only, *helpers;
    long long flush_ms;
    int joined = 0, mp = 0;
    if (!PyArg_ParseTuple(args, "O!O!O!LSOSO|pp:render", &PyList_Type, &key, &PyList_Type, &kept, &PyList_Type, &other,
                          &flush_ms, &host, &hostnames, &tags_only, &helpers, &joined, &mp))
        return NULL;
    if (!L.set) {
        PyErr_SetString(PyExc_RuntimeError, "no payload layout: call layout() first");
        return NULL;
    }
    if (hostnames != Py_None && !PyDict_Check(hostnames)) {
        PyErr_SetString(PyExc_TypeError, "hostnames must be a dict or None");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(kept);
    if (PyList_GET_SIZE(key) != L.n_key || PyList_GET_SIZE(other) != L.n_other) {
        PyErr_SetString(PyExc_TypeError, "key and other columns: not as many as the layout's");
        return NULL;
    }
    int n_cols = L.n_key + L.n_other;
    Col cols[2 * MAX_COLUMNS];
    int opened = 0;
    for (; opened < n_cols; opened++) {
        int f = opened < L.n_key ? L.key[opened] : L.other[opened - L.n_key];
        PyObject *o = PyList_GET_ITEM(opened < L.n_key ? key : other, opened < L.n_key ? opened : opened - L.n_key);
        if (col_open(&cols[opened], o, n, L.address[f], opened < L.n_key ? "key" : "of counters") < 0
            || (L.object_only[f] && !cols[opened].list)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "text and extras columns must be lists");
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
    h.cache[F_TEXT] = h.strs, h.helper[F_TEXT] = h.quote;
    h.cache[F_DEVICE] = h.devices, h.helper[F_DEVICE] = h.device;
    h.cache[F_EXPORTER] = h.exporters, h.helper[F_EXPORTER] = h.exporter;
    h.cache[F_ETHER] = h.ethers, h.helper[F_ETHER] = h.ether;
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
    char flush_text[24] = {0};
    Buf flush = {flush_text, 0, sizeof(flush_text)};
    put_int(&flush, mp, flush_ms);  /* (at most 20 characters or 9 bytes) */
    if (!joined && !out) goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        Row row;
        PyObject *t = PyList_GET_ITEM(kept, i), *item;
        if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != L.n_kept) {
            PyErr_SetString(PyExc_TypeError, "kept fields must be a tuple of as many as the layout's");
            goto error;
        }
        for (int k = 0; k < L.n_key; k++) col_get(&cols[k], i, &row, L.key[k]);
        for (int k = 0; k < L.n_kept; k++) row.o[L.kept[k]] = PyTuple_GET_ITEM(t, k);
        for (int k = 0; k < L.n_other; k++) col_get(&cols[L.n_key + k], i, &row, L.other[k]);
        if (!joined)
            b.len = 0;
        else if (i && !mp && put(&b, ",", 1) < 0)
            goto error;
        Py_ssize_t start = b.len;
        int r = put_flow(&b, &h, &row, &flush, host, hostnames, tags_only);
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
    for (int k = 0; k < n_cols; k++) col_close(&cols[k]);
    return out;
error:
    PyMem_Free(b.p);
    Py_XDECREF(out);
early:
    helpers_clear(&h);
    for (int k = 0; k < n_cols; k++) col_close(&cols[k]);
    return NULL;
}

/* Fields (ints in [0, n_fields)) of a sequence into out[], at most ``most``; their count, -1 on error. */
static int field_list(PyObject *seq, int n_fields, int *out, int most, const char *what) {
    PyObject *t = PySequence_Tuple(seq);
    if (!t) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    if (n > most) {
        Py_DECREF(t);
        PyErr_Format(PyExc_ValueError, "layout: %s holds more than %d fields", what, most);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(t, k));
        if (v == -1 && PyErr_Occurred()) { Py_DECREF(t); return -1; }
        if (v < 0 || v >= n_fields) {
            Py_DECREF(t);
            PyErr_Format(PyExc_ValueError, "layout: %s names field %ld of %d", what, v, n_fields);
            return -1;
        }
        out[k] = (int)v;
    }
    Py_DECREF(t);
    return (int)n;
}

static PyObject *layout(PyObject *self, PyObject *args) {
    int n_fields;
    PyObject *key, *kept, *other, *addresses, *objects, *ops;
    if (!PyArg_ParseTuple(args, "iOOOOOO!:layout", &n_fields, &key, &kept, &other, &addresses, &objects, &PyTuple_Type,
                          &ops))
        return NULL;
    if (n_fields <= 0 || n_fields > MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "layout: %d fields (at most %d)", n_fields, MAX_FIELDS);
        return NULL;
    }
    int buf[MAX_FIELDS];
    memset(&L, 0, sizeof(L));
    L.n_fields = n_fields;
    L.extras = -1;
    if ((L.n_key = field_list(key, n_fields, L.key, MAX_COLUMNS, "key")) < 0
        || (L.n_kept = field_list(kept, n_fields, L.kept, MAX_COLUMNS, "kept")) < 0
        || (L.n_other = field_list(other, n_fields, L.other, MAX_COLUMNS, "other")) < 0)
        goto bad;
    char seen[MAX_FIELDS] = {0};  /* every field in exactly one column: a row has each (flow_list reads all) */
    for (int k = 0; k < L.n_key + L.n_kept + L.n_other; k++) {
        int f = k < L.n_key ? L.key[k] : k < L.n_key + L.n_kept ? L.kept[k - L.n_key] : L.other[k - L.n_key - L.n_kept];
        if (seen[f]++) {
            PyErr_Format(PyExc_ValueError, "layout: field %d in two columns", f);
            goto bad;
        }
    }
    if (L.n_key + L.n_kept + L.n_other != n_fields) {
        PyErr_SetString(PyExc_ValueError, "layout: the columns do not hold every field");
        goto bad;
    }
    int n = field_list(addresses, n_fields, buf, MAX_FIELDS, "addresses");
    if (n < 0) goto bad;
    for (int k = 0; k < n; k++) L.address[buf[k]] = 1;
    if ((n = field_list(objects, n_fields, buf, MAX_FIELDS, "objects")) < 0) goto bad;
    for (int k = 0; k < n; k++) L.object_only[buf[k]] = 1;
    Py_ssize_t n_ops = PyTuple_GET_SIZE(ops);
    if (n_ops > MAX_OPS) {
        PyErr_Format(PyExc_ValueError, "layout: more than %d payload members", MAX_OPS);
        goto bad;
    }
    for (Py_ssize_t k = 0; k < n_ops; k++) {
        const char *name;
        PyObject *json_key, *mp_key, *fields;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(ops, k), "sSSO:member", &name, &json_key, &mp_key, &fields)) goto bad;
        int fmt = 0;
        while (fmt < N_FORMATS && strcmp(FORMAT_NAMES[fmt], name) != 0) fmt++;
        if (fmt == N_FORMATS) {
            PyErr_Format(PyExc_ValueError, "layout: unknown format %s", name);
            goto bad;
        }
        Op *op = &L.ops[k];
        if (field_list(fields, n_fields, op->f, 4, name) != FORMAT_FIELDS[fmt]) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "layout: format %s takes %d fields", name, FORMAT_FIELDS[fmt]);
            goto bad;
        }
        for (int j = 0; j < FORMAT_FIELDS[fmt]; j++) {  /* an address where one is written, an int elsewhere */
            int wants_address = (fmt == F_ENDPOINT && j == 0) || fmt == F_NEXT_HOP;
            int ints = fmt != F_TEXT && fmt != F_DEVICE && fmt != F_EXPORTER && fmt != F_EXTRAS && !wants_address;
            if ((wants_address && !L.address[op->f[j]]) || (ints && (L.address[op->f[j]] || L.object_only[op->f[j]]))) {
                PyErr_Format(PyExc_ValueError, "layout: format %s cannot write field %d", name, op->f[j]);
                goto bad;
            }
        }
        if (fmt == F_EXTRAS && k != n_ops - 1) {
            PyErr_SetString(PyExc_ValueError, "layout: the additional fields must be the last member");
            goto bad;
        }
        op->format = fmt;
        PyObject *keys[2] = {json_key, mp_key};
        for (int e = 0; e < 2; e++) {
            Py_ssize_t len = PyBytes_GET_SIZE(keys[e]);
            if (len >= MAX_KEY) {
                PyErr_Format(PyExc_ValueError, "layout: a member's key of %zd bytes (under %d)", len, MAX_KEY);
                goto bad;
            }
            memcpy(op->key[e], PyBytes_AS_STRING(keys[e]), len);
            op->key_len[e] = (int)len;
        }
        L.n_ops = (int)k + 1;
        if (fmt == F_EXTRAS) L.extras = op->f[0];
    }
    L.set = 1;
    Py_RETURN_NONE;
bad:
    L.set = 0;
    return NULL;
}

static PyMethodDef methods[] = {
    {"layout", layout, METH_VARARGS,
     "layout(n_fields, key, kept, other, addresses, objects, members): the flow fields the columns hold, which are"
     " addresses, which only objects, and the payload's members as (format, JSON key, msgpack key, fields)."},
    {"render", render, METH_VARARGS,
     "Aggregated flows -> their payload objects as JSON texts (see the module doc); joined: one text, the flows"
     " separated by commas."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jsonflows", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jsonflows(void) { return PyModule_Create(&module); }
