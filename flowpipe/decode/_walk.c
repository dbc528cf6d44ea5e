/* Walks over a datagram's parts, compiled: flowpipe.decode.walk's data_sets and flow_samples, with the
 * same results (see that module for what they return; the tests hold the two to each other).
 *
 *   data_sets(data) -> (version, secs, uptime, sequence, domain, [set id, start, end, ...]) | None
 *   flow_samples(data, off, nsamples) -> (spans: bytes, rate, unrated, rest: list | None)
 *
 * Both only read data (any bytes-like object); every offset is checked against its length first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
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

static PyObject *flow_samples(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "flow_samples(data, off, nsamples)");
        return NULL;
    }
    Py_ssize_t off0 = PyLong_AsSsize_t(args[1]);
    if (off0 == -1 && PyErr_Occurred())
        return NULL;
    unsigned long long nsamples = PyLong_AsUnsignedLongLong(args[2]);
    if (nsamples == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (off0 < 0) {
        PyErr_SetString(PyExc_ValueError, "off < 0");
        return NULL;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *d = b.buf;
    uint64_t n = (uint64_t)b.len, off = (uint64_t)off0;
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
    PyBuffer_Release(&b);
    return out;
}

static PyMethodDef methods[] = {
    {"data_sets", (PyCFunction)data_sets, METH_O, "The header values and data set spans of a data-only v9/IPFIX datagram, or None."},
    {"flow_samples", (PyCFunction)(void (*)(void))flow_samples, METH_FASTCALL, "An sFlow datagram's flow sample spans and the rest, in order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
