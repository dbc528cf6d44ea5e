/* Walks over a datagram's parts, compiled: flowpipe.decode.walk's data_sets and flow_samples, with the
 * same results (see that module for what they return; the tests hold the two to each other).
 *
 *   data_sets(data) -> (version, secs, uptime, sequence, domain, [set id, start, end, ...]) | None
 *   flow_samples(data, off, nsamples) -> (spans: bytes, rate, unrated, rest: list | None)
 *   plain_samples(data) -> (agent, sub-agent, sequence, spans, rate, unrated) | None
 *       an sFlow datagram of flow samples only: its header and flow_samples (see below)
 *   read_samples(buf, start, end, expanded, out) -> None
 *       flowpipe.decode.sflow_columns' reading of flow samples: every sample's header, records and
 *       sampled frame, one column of out (int64, SAMPLE_COLUMNS x n, C order) per value (see there)
 *   compact(body, lens, min_size, max_records) -> (packed, count, overran)
 *       a data set of variable-length records as records of their fixed-length fields (see below)
 *   tuple_columns(flows, ints, lengths) -> (columns, ok)
 *       flow tuples read into int64 columns (flowpipe.decode.rows; see below)
 *   column_tuples(columns, n) -> [tuple, ...]
 *       the other way: n tuples, one item from each column (see below)
 *
 * Both only read data (any bytes-like object); every offset is checked against its length first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static PyObject *data_sets(PyObject *mod, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *d = b.buf;
    size_t n = (size_t)b.len, off;
    uint32_t version, uptime = 0, secs, seq, did;
    PyObject *out = NULL, *sets = NULL;
    if (n < 20 || d[0])
        goto none;
    version = d[1];
    if (version == 9) {
        uptime = be32(d + 4); secs = be32(d + 8); seq = be32(d + 12); did = be32(d + 16);
        off = 20;
    } else if (version == 10) {
        if (be16(d + 2) != n)
            goto none;
        secs = be32(d + 4); seq = be32(d + 8); did = be32(d + 12);
        off = 16;
    } else {
        goto none;
    }
    size_t count = 0;  /* first pass: the sets are all well-formed data sets filling the datagram */
    for (size_t o = off; o < n; count++) {
        if (n - o < 4)
            goto none;
        uint32_t sid = be16(d + o), ln = be16(d + o + 2);
        if (sid < 256 || ln < 4 || o + ln > n)
            goto none;
        o += ln;
    }
    if (!count)
        goto none;
    if (!(sets = PyList_New((Py_ssize_t)count * 3)))
        goto done;
    for (size_t k = 0; off < n; k += 3) {
        uint32_t ln = be16(d + off + 2);
        PyObject *v[3] = {PyLong_FromUnsignedLong(be16(d + off)), PyLong_FromSize_t(off + 4), PyLong_FromSize_t(off + ln)};
        for (int j = 0; j < 3; j++) {
            if (!v[j]) {
                for (int i = j + 1; i < 3; i++)
                    Py_XDECREF(v[i]);
                goto done;
            }
            PyList_SET_ITEM(sets, (Py_ssize_t)(k + j), v[j]);
        }
        off += ln;
    }
    out = Py_BuildValue("(kkkkkO)", (unsigned long)version, (unsigned long)secs, (unsigned long)uptime,
                        (unsigned long)seq, (unsigned long)did, sets);
    goto done;
none:
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(sets);
    PyBuffer_Release(&b);
    return out;
}

/* Appends to *rest (made on first use) the new reference item; -1 on error (item released). */
static int rest_add(PyObject **rest, PyObject *item) {
    if (!item)
        return -1;
    if (!*rest && !(*rest = PyList_New(0))) {
        Py_DECREF(item);
        return -1;
    }
    int r = PyList_Append(*rest, item);
    Py_DECREF(item);
    return r;
}

static PyObject *sample_walk(const uint8_t *d, uint64_t n, uint64_t off, unsigned long long nsamples);

static PyObject *flow_samples(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "flow_samples(data, off, nsamples)");
        return NULL;
    }
    Py_ssize_t off0 = PyLong_AsSsize_t(args[1]);
    if (off0 == -1 && PyErr_Occurred())
        return NULL;
    long long nsigned = PyLong_AsLongLong(args[2]);
    if (nsigned == -1 && PyErr_Occurred())
        return NULL;
    if (off0 < 0 || nsigned < 0) {
        PyErr_Format(PyExc_ValueError, "offset %zd and sample count %lld must not be negative", off0, nsigned);
        return NULL;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = sample_walk(b.buf, (uint64_t)b.len, (uint64_t)off0, (unsigned long long)nsigned);
    PyBuffer_Release(&b);
    return out;
}

/* plain_samples(data) -> (agent, sub-agent, sequence, spans, rate, unrated) | None
 * An sFlow v5 datagram's header and flow_samples' walk of its samples, when it holds flow samples
 * only (nothing the walk puts in its rest) and its header is whole; None for any other datagram. */
static PyObject *plain_samples(PyObject *mod, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *d = b.buf;
    uint64_t n = (uint64_t)b.len;
    PyObject *res = NULL, *walked = NULL, *agent = NULL;
    uint32_t atype = n >= 8 ? be32(d + 4) : 0;
    uint64_t alen = atype == 1 ? 4 : atype == 2 ? 16 : 0, hsize = 24 + alen;
    if (n < 8 || be32(d) != 5 || !alen || n < hsize) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    if (!(walked = sample_walk(d, n, hsize, be32(d + 20 + alen))))
        goto done;
    if (PyTuple_GET_ITEM(walked, 3) != Py_None) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    if (!(agent = PyBytes_FromStringAndSize((const char *)d + 8, (Py_ssize_t)alen)))
        goto done;
    res = Py_BuildValue("(OkkOOO)", agent, (unsigned long)be32(d + 8 + alen), (unsigned long)be32(d + 12 + alen),
                        PyTuple_GET_ITEM(walked, 0), PyTuple_GET_ITEM(walked, 1), PyTuple_GET_ITEM(walked, 2));
done:
    Py_XDECREF(agent);
    Py_XDECREF(walked);
    PyBuffer_Release(&b);
    return res;
}

/* The walk of flow_samples over data[0:n] from off; NULL on error. */
static PyObject *sample_walk(const uint8_t *d, uint64_t n, uint64_t off, unsigned long long nsamples) {
    PyObject *out = NULL, *rest = NULL, *spans = NULL;
    /* room for every flow sample there can be: each takes at least 8 + 32 bytes */
    size_t most = off < n ? (size_t)((n - off) / 40) : 0;
    if (nsamples < most)
        most = (size_t)nsamples;
    if (!(spans = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(most * 24))))
        goto done;
    int64_t *sp = (int64_t *)PyBytes_AS_STRING(spans);
    size_t nspans = 0;
    uint32_t rate = 0;
    unsigned long long unrated = 0;
    for (unsigned long long s = 0; s < nsamples; s++) {
        if (off > n || n - off < 8) {
            if (rest_add(&rest, PyUnicode_FromString("sample_truncated")) < 0)
                goto done;
            break;
        }
        uint32_t fmt = be32(d + off), length = be32(d + off + 4);
        uint64_t start = off + 8, end = start + length;
        if (end > n) {
            if (rest_add(&rest, PyUnicode_FromString("sample_truncated")) < 0)
                goto done;
            break;
        }
        off = end;
        const char *why = NULL;
        if (fmt >> 12) {
            why = "sample_enterprise";
        } else if (fmt == 1 || fmt == 3) {
            if (length < (fmt == 3 ? 44u : 32u)) {
                why = "sample_short";
            } else {
                int64_t *t = sp + 3 * nspans++;
                t[0] = (int64_t)start; t[1] = (int64_t)end; t[2] = fmt == 3;
                rate = be32(d + start + (fmt == 3 ? 12 : 8));
                if (!rate)
                    unrated++;
            }
        } else if (fmt == 2 || fmt == 4) {
            if (rest_add(&rest, Py_BuildValue("(kKK)", (unsigned long)fmt, (unsigned long long)start,
                                              (unsigned long long)end)) < 0)
                goto done;
        } else {
            why = fmt == 5 ? "discard_sample" : "sample_unknown_format";
        }
        if (why && rest_add(&rest, PyUnicode_InternFromString(why)) < 0)
            goto done;
    }
    if (nspans * 24 != most * 24 && _PyBytes_Resize(&spans, (Py_ssize_t)(nspans * 24)) < 0)
        goto done;
    out = Py_BuildValue("(OkKO)", spans, (unsigned long)rate, unrated, rest ? rest : Py_None);
done:
    Py_XDECREF(spans);
    Py_XDECREF(rest);
    return out;
}

/* ---- sFlow flow samples read into columns (flowpipe.decode.sflow_columns._Samples, the same values) */

enum {
    C_RATE, C_IN_IF, C_OUT_FMT, C_OUT_IF, C_OK, C_ROUTER_AT, C_ROUTER_SIZE, C_SRC_MASK, C_DST_MASK, C_GW_AT,
    C_GW_SIZE, C_HAS_AS, C_SRC_AS, C_DST_AS, C_FRAME_LEN, C_DST_MAC, C_SRC_MAC, C_ETHER_TYPE, C_PROTO, C_TOS,
    C_SPORT, C_DPORT, C_FLAGS, C_FAMILY, C_L3, SAMPLE_COLUMNS
};

typedef struct {
    const uint8_t *p;
    int64_t n;
} Bytes;

/* Reads that are 0 outside the buffer (a sample whose offsets lie is marked not ok before its values count). */
static inline int64_t r8(Bytes b, int64_t at) { return at >= 0 && at + 1 <= b.n ? b.p[at] : 0; }
static inline int64_t r16(Bytes b, int64_t at) { return at >= 0 && at + 2 <= b.n ? (int64_t)be16(b.p + at) : 0; }
static inline int64_t r32(Bytes b, int64_t at) { return at >= 0 && at + 4 <= b.n ? (int64_t)be32(b.p + at) : 0; }
static inline int64_t address_size(int64_t kind) { return kind == 1 ? 4 : kind == 2 ? 16 : 0; }
static inline int is_vlan(int64_t et) { return et == 0x8100 || et == 0x88A8 || et == 0x9100 || et == 0x9200; }
static inline int is_v6_ext(int64_t h) {
    return h == 0 || h == 43 || h == 44 || h == 51 || h == 60 || h == 135 || h == 139 || h == 140;
}

/* Protocol and ToS; ports (first fragment, TCP/UDP, 4 bytes there) and TCP flags (14). */
static void transport(Bytes b, int64_t *v, int64_t l4, int64_t e, int64_t proto, int64_t tos, int first) {
    v[C_PROTO] = proto;
    v[C_TOS] = tos;
    int tcp = proto == 6, ported = first && e - l4 >= 4 && (tcp || proto == 17);
    v[C_SPORT] = ported ? r16(b, l4) : 0;
    v[C_DPORT] = ported ? r16(b, l4 + 2) : 0;
    v[C_FLAGS] = ported && tcp && e - l4 >= 14 ? r8(b, l4 + 13) : 0;
}

/* One sample at [start, end): its values into v[column]. A span outside the buffer is not ok, unread
 * (offsets then stay within the buffer plus 32-bit lengths: no sum below comes near overflowing). */
static void read_sample(Bytes b, int64_t start, int64_t end, int x, int64_t *v) {
    v[C_ROUTER_AT] = v[C_GW_AT] = -1;
    if (start < 0 || end < start || end > b.n)
        return;  /* (v[C_OK] stays 0) */
    v[C_RATE] = r32(b, start + (x ? 12 : 8));
    int64_t word = r32(b, start + (x ? 28 : 20));
    v[C_IN_IF] = x ? word : word & 0x3FFFFFFF;
    word = r32(b, start + (x ? 36 : 24));
    v[C_OUT_FMT] = x ? r32(b, start + 32) : word >> 30;
    v[C_OUT_IF] = x ? word : word & 0x3FFFFFFF;
    int64_t nrec = r32(b, start + (x ? 40 : 28)), cur = start + (x ? 44 : 32);
    int ok = nrec <= (end - cur) / 8 && (start & 3) == 0;  /* (end - cur >= 0: the walk checked the length) */
    int64_t hdr = -1, hdr_end = 0, router_end = 0, gw_end = 0;
    for (int64_t k = 0; ok && k < nrec; k++) {  /* the records */
        if (end - cur < 8) {
            ok = 0;
            break;
        }
        int64_t fmt = r32(b, cur), length = r32(b, cur + 4), p = cur + 8, nxt = p + length;
        int bad = nxt > end || (length & 3) || fmt == 2 || fmt == 3 || fmt == 4;
        if (fmt == 1 && hdr < 0) {  /* the first raw header counts, later ones are ignored */
            bad |= length < 16;
            hdr = p;
            hdr_end = nxt;
        } else if (fmt == 1002) {
            bad |= v[C_ROUTER_AT] >= 0;
            v[C_ROUTER_AT] = p;
            router_end = nxt;
        } else if (fmt == 1003) {
            bad |= v[C_GW_AT] >= 0;
            v[C_GW_AT] = p;
            gw_end = nxt;
        }
        if (bad)
            ok = 0;
        cur = nxt;
    }
    ok &= hdr >= 0;
    if (ok && v[C_ROUTER_AT] >= 0) {  /* extended router: next hop (type word, address), the two masks */
        int64_t p = v[C_ROUTER_AT], size = address_size(r32(b, p));
        if (router_end - p < 4 + size + 8)
            ok = 0;
        v[C_SRC_MASK] = r32(b, p + 4 + size);
        v[C_DST_MASK] = r32(b, p + 8 + size);
        v[C_ROUTER_SIZE] = size;
    }
    if (ok && v[C_GW_AT] >= 0) {  /* extended gateway: next hop, own/source/peer AS, the AS path segments */
        int64_t p = v[C_GW_AT], e = gw_end, size = address_size(r32(b, p));
        p += 4 + size;
        int bad = e - p < 16;
        int64_t src_as = r32(b, p + 4), dst_as = r32(b, p), nseg = r32(b, p + 12);
        p += 16;
        if (!bad && nseg > (e - p) / 8)
            bad = 1;
        for (int64_t k = 0; !bad && k < nseg; k++) {
            int64_t q = p + 8, count = r32(b, p + 4);
            if (e - q < 0 || count > (e - q) >> 2) {
                bad = 1;
                break;
            }
            if (count > 0)
                dst_as = r32(b, q + 4 * (count - 1));  /* the last AS of the path */
            p = q + 4 * count;
        }
        if (bad)
            ok = 0;
        v[C_GW_SIZE] = size;
        v[C_HAS_AS] = 1;
        v[C_SRC_AS] = src_as;
        v[C_DST_AS] = dst_as;
    }
    if (!ok) {
        v[C_OK] = 0;
        return;
    }
    /* the sampled frame: Ethernet, whole, long enough; one VLAN tag; IPv4/IPv6 and TCP/UDP */
    v[C_FRAME_LEN] = r32(b, hdr + 4);
    int64_t hlen = r32(b, hdr + 12), hp = hdr + 16, hend = hp + hlen;
    if (r32(b, hdr) != 1 || hlen > hdr_end - hp || hlen < 14) {
        v[C_OK] = 0;
        return;
    }
    v[C_DST_MAC] = r16(b, hp) << 32 | r16(b, hp + 2) << 16 | r16(b, hp + 4);
    v[C_SRC_MAC] = r16(b, hp + 6) << 32 | r16(b, hp + 8) << 16 | r16(b, hp + 10);
    int64_t et = r16(b, hp + 12), l3 = hp + 14;
    if (is_vlan(et)) {
        int64_t inner = r16(b, l3 + 2);
        if (hend - l3 < 4 || is_vlan(inner))
            ok = 0;
        et = inner;
        l3 += 4;
    }
    if (et == 0x8847 || et == 0x8848 || et == 0x8864)
        ok = 0;
    v[C_ETHER_TYPE] = et;
    if (ok && et == 0x0800) {
        v[C_FAMILY] = 4;
        v[C_L3] = l3;
        int64_t vihl = r8(b, l3);
        if (hend - l3 < 20 || vihl >> 4 != 4 || (vihl & 15) < 5)
            ok = 0;
        transport(b, v, l3 + ((vihl & 15) << 2), hend, r8(b, l3 + 9), r8(b, l3 + 1), (r16(b, l3 + 6) & 0x1FFF) == 0);
    } else if (ok && et == 0x86DD) {
        v[C_FAMILY] = 6;
        v[C_L3] = l3;
        int64_t vcl = r16(b, l3) << 16 | r16(b, l3 + 2), first = r8(b, l3 + 6);
        if (hend - l3 < 40 || vcl >> 28 != 6 || is_v6_ext(first))
            ok = 0;
        transport(b, v, l3 + 40, hend, first, (vcl >> 20) & 0xFF, 1);
    }
    v[C_OK] = ok;
}

static PyObject *read_samples(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "read_samples(buf, start, end, expanded, out)");
        return NULL;
    }
    Py_buffer bb[5];
    int got = 0;
    PyObject *res = NULL;
    for (; got < 5; got++)
        if (PyObject_GetBuffer(args[got], &bb[got], got == 4 ? PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS : PyBUF_C_CONTIGUOUS) < 0)
            goto done;
    Py_ssize_t n = bb[1].len / 8;
    if (bb[1].len != n * 8 || bb[2].len != n * 8 || bb[3].len != n * 8 || bb[4].len != n * 8 * SAMPLE_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "read_samples: start, end, expanded: n int64; out: SAMPLE_COLUMNS x n int64");
        goto done;
    }
    Bytes b = {bb[0].buf, bb[0].len};
    const int64_t *start = bb[1].buf, *end = bb[2].buf, *x = bb[3].buf;
    int64_t *out = bb[4].buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t v[SAMPLE_COLUMNS] = {0};
        read_sample(b, start[i], end[i], x[i] != 0, v);
        for (int k = 0; k < SAMPLE_COLUMNS; k++)
            out[k * n + i] = v[k];
    }
    res = Py_NewRef(Py_None);
done:
    while (got-- > 0)
        PyBuffer_Release(&bb[got]);
    return res;
}

/* tuple_columns(flows, ints, lengths) -> (columns: bytes, ok: bytes)
 * Flow tuples read into int64 columns (column-major, len(ints) + len(lengths) columns of n):
 * ints: ((slot, lo, hi), ...), the integer at that slot (an int, or any object with __index__), 0
 * where it is none or outside [lo, hi], and then that flow's ok byte 0; lengths: (slot, ...), the
 * length of the bytes at that slot, -1 where it is not bytes. */
#define MAX_COLUMNS 32
static int bound(PyObject *v, long long *out) {
    /* A bound as long long, clamped (a bound past 64 bits compares like the largest one). */
    int over = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &over);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = over > 0 ? LLONG_MAX : over < 0 ? LLONG_MIN : x;
    return 0;
}

static PyObject *tuple_columns(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[0]) || !PyTuple_Check(args[1]) || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "tuple_columns(flows: list, ints: tuple, lengths: tuple)");
        return NULL;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(args[1]), m = PyTuple_GET_SIZE(args[2]);
    if (k + m > MAX_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "tuple_columns: too many columns");
        return NULL;
    }
    Py_ssize_t slot[MAX_COLUMNS], need = 0;
    long long lo[MAX_COLUMNS], hi[MAX_COLUMNS];
    for (Py_ssize_t j = 0; j < k + m; j++) {
        PyObject *e = j < k ? PyTuple_GET_ITEM(args[1], j) : PyTuple_GET_ITEM(args[2], j - k);
        if (j < k) {
            PyObject *a, *b;
            if (!PyArg_ParseTuple(e, "nOO", &slot[j], &a, &b) || bound(a, &lo[j]) < 0 || bound(b, &hi[j]) < 0)
                return NULL;
        } else if ((slot[j] = PyLong_AsSsize_t(e)) == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (slot[j] < 0) {
            PyErr_SetString(PyExc_ValueError, "tuple_columns: negative slot");
            return NULL;
        }
        if (slot[j] >= need)
            need = slot[j] + 1;
    }
    /* A copy of the list: the flows stay alive (and the count fixed) whatever an __index__ does. */
    PyObject *flows = PySequence_Tuple(args[0]), *cols = NULL, *oks = NULL;
    if (!flows)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(flows);
    cols = PyBytes_FromStringAndSize(NULL, (k + m) * n * 8);
    oks = PyBytes_FromStringAndSize(NULL, n);
    if (!cols || !oks)
        goto fail;
    int64_t *c = (int64_t *)PyBytes_AS_STRING(cols);
    char *ok = PyBytes_AS_STRING(oks);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyTuple_GET_ITEM(flows, i);
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) < need) {
            PyErr_SetString(PyExc_TypeError, "tuple_columns: a flow is not a tuple long enough");
            goto fail;
        }
        char good = 1;
        for (Py_ssize_t j = 0; j < k; j++) {
            PyObject *v = PyTuple_GET_ITEM(f, slot[j]);  /* (a tuple's items cannot change) */
            long long x = 0;
            int over = 0, fits = 0;
            if (PyLong_Check(v)) {
                x = PyLong_AsLongLongAndOverflow(v, &over);
                fits = !over && !(x == -1 && PyErr_Occurred());
            } else if (PyIndex_Check(v)) {
                PyObject *ix = PyNumber_Index(v);
                if (ix) {
                    x = PyLong_AsLongLongAndOverflow(ix, &over);
                    fits = !over && !(x == -1 && PyErr_Occurred());
                    Py_DECREF(ix);
                }
            }
            if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_TypeError))
                    goto fail;  /* (what __index__ raised besides "not an integer": the caller's to see) */
                PyErr_Clear();
                fits = 0;
            }
            if (!fits || x < lo[j] || x > hi[j]) {
                x = 0;
                good = 0;
            }
            c[j * n + i] = x;
        }
        for (Py_ssize_t j = k; j < k + m; j++) {
            PyObject *v = PyTuple_GET_ITEM(f, slot[j]);
            c[j * n + i] = PyBytes_Check(v) ? PyBytes_GET_SIZE(v) : -1;
        }
        ok[i] = good;
    }
    Py_DECREF(flows);
    return Py_BuildValue("(NN)", cols, oks);
fail:
    Py_XDECREF(flows);
    Py_XDECREF(cols);
    Py_XDECREF(oks);
    return NULL;
}

/* column_tuples(columns, n) -> list of n tuples
 * Row i's tuple holds, for each column in order: a list's item i; a 1-tuple's one item (the same
 * object in every row); a buffer of n 64-bit integers' (int64 or uint64, C-contiguous) item i as an
 * int. An int equal to the one before it in its column is that same object (a column of one value
 * costs one int, as contexts keep these tuples). flowpipe.decode.walk.py_column_tuples in Python.
 * A tuple of ints, strings, bytes and None only is left out of the garbage collector's lists at once
 * (what the collector itself does to such a tuple when it first meets it): a million contexts keep
 * one each, which every full collection would otherwise walk until then. */
static inline int atomic(PyObject *v) {
    return v == Py_None || PyLong_CheckExact(v) || PyUnicode_CheckExact(v) || PyBytes_CheckExact(v);
}

typedef struct { int kind; PyObject *obj; Py_buffer b; int is_unsigned; PyObject *last; unsigned long long last_v; } Col;
enum { COL_LIST = 0, COL_CONST = 1, COL_INTS = 2 };

static PyObject *column_tuples(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "column_tuples(columns: tuple, n: int)");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "column_tuples: n must not be negative");
        return NULL;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(args[0]), got = 0;
    if (k > MAX_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "column_tuples: too many columns");
        return NULL;
    }
    Col cols[MAX_COLUMNS];
    PyObject *out = NULL;
    for (; got < k; got++) {
        Col *c = &cols[got];
        PyObject *e = PyTuple_GET_ITEM(args[0], got);
        c->obj = e;
        c->last = NULL;
        if (PyList_Check(e)) {
            c->kind = COL_LIST;
            if (PyList_GET_SIZE(e) != n) {
                PyErr_SetString(PyExc_ValueError, "column_tuples: a list column is not n long");
                goto done;
            }
        } else if (PyTuple_Check(e) && PyTuple_GET_SIZE(e) == 1) {
            c->kind = COL_CONST;
            c->obj = PyTuple_GET_ITEM(e, 0);
        } else {
            c->kind = COL_INTS;
            if (PyObject_GetBuffer(e, &c->b, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
                goto done;
            const char *f = c->b.format ? c->b.format : "B";
            if (*f == '=' || *f == '@' || *f == '<')
                f++;
            int sign = *f == 'q' || *f == 'l', unsign = *f == 'Q' || *f == 'L';
            if (c->b.itemsize != 8 || !(sign || unsign) || f[1] || c->b.ndim > 1 || c->b.len % 8 || c->b.len / 8 != n) {
                PyBuffer_Release(&c->b);
                PyErr_SetString(PyExc_ValueError, "column_tuples: an integer column is not n native 64-bit integers");
                goto done;
            }
            c->is_unsigned = unsign;
        }
    }
    out = PyList_New(n);
    if (!out)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_New(k);
        if (!t) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, t);
        int plain = 1;
        for (Py_ssize_t j = 0; j < k; j++) {
            Col *c = &cols[j];
            PyObject *v;
            if (c->kind == COL_LIST) {
                if (i >= PyList_GET_SIZE(c->obj)) {  /* (shortened meanwhile, by a finalizer, say) */
                    PyErr_SetString(PyExc_ValueError, "column_tuples: a list column changed length");
                    Py_CLEAR(out);
                    goto done;
                }
                v = PyList_GET_ITEM(c->obj, i);
                Py_INCREF(v);
                plain = plain && atomic(v);
            } else if (c->kind == COL_CONST) {
                v = c->obj;
                Py_INCREF(v);
                plain = plain && atomic(v);
            } else {
                unsigned long long x = ((const unsigned long long *)c->b.buf)[i];
                if (c->last && x == c->last_v) {
                    v = c->last;
                    Py_INCREF(v);
                } else {
                    v = c->is_unsigned ? PyLong_FromUnsignedLongLong(x) : PyLong_FromLongLong((long long)x);
                    if (!v) {
                        Py_CLEAR(out);
                        goto done;
                    }
                    Py_XDECREF(c->last);
                    c->last = v;
                    c->last_v = x;
                    Py_INCREF(v);
                }
            }
            PyTuple_SET_ITEM(t, j, v);
        }
        if (plain && PyObject_GC_IsTracked(t))
            PyObject_GC_UnTrack(t);
    }
done:
    for (Py_ssize_t j = 0; j < got; j++) {
        if (cols[j].kind == COL_INTS) {
            Py_XDECREF(cols[j].last);
            PyBuffer_Release(&cols[j].b);
        }
    }
    return out;
}

/* compact(body, lens, min_size, max_records) -> (packed: bytes, count, overran)
 * The records of a data set of a template with variable-length fields (RFC 7011 section 7: a
 * length byte, 255 then two bytes for 255 or more), as records of its fixed-length fields only,
 * end to end: the first max_records of them; overran: a record ran past the set (it and the rest
 * are not read; the records before it are), whether or not past max_records. The walk
 * flowpipe.decode.elements.split_varlen makes. */
static PyObject *compact(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t min_size, max_records;
    if (nargs != 4 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "compact(body, lens: tuple, min_size, max_records)");
        return NULL;
    }
    if ((min_size = PyLong_AsSsize_t(args[2])) == -1 && PyErr_Occurred())
        return NULL;
    if ((max_records = PyLong_AsSsize_t(args[3])) == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t nf = PyTuple_GET_SIZE(args[1]);
    if (min_size < 1 || max_records < 0 || nf > 4096) {
        PyErr_SetString(PyExc_ValueError, "compact: min_size >= 1, max_records >= 0, at most 4096 fields");
        return NULL;
    }
    long lens[4096];
    for (Py_ssize_t j = 0; j < nf; j++) {
        lens[j] = PyLong_AsLong(PyTuple_GET_ITEM(args[1], j));
        if (lens[j] == -1 && PyErr_Occurred())
            return NULL;
        if (lens[j] < 0 || lens[j] > 65535) {
            PyErr_SetString(PyExc_ValueError, "compact: a field length is not 0..65535");
            return NULL;
        }
    }
    Py_buffer b;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *d = b.buf;
    Py_ssize_t n = b.len, o = 0, count = 0, used = 0;
    int overran = 0;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n), *res = NULL;
    if (!out)
        goto done;
    uint8_t *w = (uint8_t *)PyBytes_AS_STRING(out);
    while (n - o >= min_size) {
        Py_ssize_t mark = used, start = o;
        int keep = count < max_records;
        for (Py_ssize_t j = 0; j < nf && !overran; j++) {
            Py_ssize_t ln = lens[j];
            if (ln == 65535) {
                if (o >= n) { overran = 1; break; }
                ln = d[o++];
                if (ln == 255) {
                    if (o + 2 > n) { overran = 1; break; }
                    ln = (Py_ssize_t)d[o] << 8 | d[o + 1];
                    o += 2;
                }
                if (o + ln > n) { overran = 1; break; }
                o += ln;
                continue;
            }
            if (o + ln > n) { overran = 1; break; }
            if (keep) {
                memcpy(w + used, d + o, (size_t)ln);
                used += ln;
            }
            o += ln;
        }
        if (overran) {
            used = mark;
            break;
        }
        if (keep)
            count++;
        if (o == start)
            break;  /* (a record of no bytes at all: no variable-length field; not this walk's) */
    }
    if (_PyBytes_Resize(&out, used) < 0)
        goto done;  /* (out is freed and NULL then) */
    res = Py_BuildValue("(NnO)", out, count, overran ? Py_True : Py_False);
    out = NULL;
done:
    Py_XDECREF(out);
    PyBuffer_Release(&b);
    return res;
}

static PyMethodDef methods[] = {
    {"data_sets", (PyCFunction)data_sets, METH_O, "The header values and data set spans of a data-only v9/IPFIX datagram, or None."},
    {"flow_samples", (PyCFunction)(void (*)(void))flow_samples, METH_FASTCALL, "An sFlow datagram's flow sample spans and the rest, in order."},
    {"plain_samples", (PyCFunction)plain_samples, METH_O, "An sFlow datagram of flow samples only: its header and sample spans, or None."},
    {"read_samples", (PyCFunction)(void (*)(void))read_samples, METH_FASTCALL, "sFlow flow samples read into columns."},
    {"tuple_columns", (PyCFunction)(void (*)(void))tuple_columns, METH_FASTCALL, "Flow tuples read into int64 columns."},
    {"column_tuples", (PyCFunction)(void (*)(void))column_tuples, METH_FASTCALL, "Tuples made of columns, row by row."},
    {"compact", (PyCFunction)(void (*)(void))compact, METH_FASTCALL, "Variable-length records as their fixed fields."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "SAMPLE_COLUMNS", SAMPLE_COLUMNS) < 0)
        Py_CLEAR(m);
    return m;
}
