/* Many UDP datagrams per system call (Linux recvmmsg), for flowpipe.listen.
 *
 *   Receiver(count)            buffers for ``count`` datagrams of up to 65535 bytes each
 *   Receiver.recv(fd, n) -> list[tuple[bytes, str, int]]
 *       the datagrams queued on socket fd, at most n (<= count), each as (data, source
 *       address as text (inet_ntop), source port); [] when none is queued; OSError as recvfrom raises.
 *
 * One call replaces ``count`` recvfrom_into calls and their copies: the listener's per-datagram cost
 * is then what making the three objects costs. Built only where recvmmsg exists (Linux); elsewhere
 * the listener reads one datagram per call as before.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define DATAGRAM 65535

typedef struct {
    PyObject_HEAD
    unsigned int count;
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct sockaddr_storage *addrs;
    char *bufs;
} Receiver;

static void Receiver_dealloc(Receiver *r) {
    free(r->msgs); free(r->iov); free(r->addrs); free(r->bufs);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyObject *Receiver_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    unsigned int count;
    if (!PyArg_ParseTuple(args, "I:Receiver", &count))
        return NULL;
    if (count < 1 || count > 1024) {
        PyErr_SetString(PyExc_ValueError, "count must be 1..1024");
        return NULL;
    }
    Receiver *r = (Receiver *)type->tp_alloc(type, 0);
    if (!r)
        return NULL;
    r->count = count;
    r->msgs = calloc(count, sizeof(struct mmsghdr));
    r->iov = calloc(count, sizeof(struct iovec));
    r->addrs = calloc(count, sizeof(struct sockaddr_storage));
    r->bufs = malloc((size_t)count * DATAGRAM);
    if (!r->msgs || !r->iov || !r->addrs || !r->bufs) {
        Py_DECREF(r);
        return PyErr_NoMemory();
    }
    return (PyObject *)r;
}

/* (address text, port) of a source address; NULL with an exception for an unknown family. */
static PyObject *source(const struct sockaddr_storage *a, int *port) {
    char text[INET6_ADDRSTRLEN];
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &s->sin_addr, text, sizeof(text));
        *port = ntohs(s->sin_port);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof(text));
        *port = ntohs(s->sin6_port);
    } else {
        PyErr_Format(PyExc_OSError, "datagram from address family %d", (int)a->ss_family);
        return NULL;
    }
    return PyUnicode_FromString(text);
}

static PyObject *Receiver_recv(Receiver *r, PyObject *args) {
    PyObject *sock;
    unsigned int n;
    if (!PyArg_ParseTuple(args, "OI:recv", &sock, &n))
        return NULL;
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0)
        return NULL;
    if (n > r->count)
        n = r->count;
    if (!n)
        return PyList_New(0);
    for (unsigned int i = 0; i < n; i++) {
        r->iov[i].iov_base = r->bufs + (size_t)i * DATAGRAM;
        r->iov[i].iov_len = DATAGRAM;
        memset(&r->msgs[i].msg_hdr, 0, sizeof(struct msghdr));
        r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
        r->msgs[i].msg_hdr.msg_iovlen = 1;
        r->msgs[i].msg_hdr.msg_name = &r->addrs[i];
        r->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    }
    int got;
    Py_BEGIN_ALLOW_THREADS
    got = recvmmsg(fd, r->msgs, n, MSG_DONTWAIT, NULL);
    Py_END_ALLOW_THREADS
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *out = PyList_New(got);
    if (!out)
        return NULL;
    for (int i = 0; i < got; i++) {
        int port = 0;
        PyObject *host = source(&r->addrs[i], &port);
        PyObject *data = host ? PyBytes_FromStringAndSize(r->bufs + (size_t)i * DATAGRAM, r->msgs[i].msg_len) : NULL;
        PyObject *item = data ? Py_BuildValue("(NNi)", data, host, port) : NULL;
        if (!item) {
            if (!data)
                Py_XDECREF(host);
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

static PyMethodDef Receiver_methods[] = {
    {"recv", (PyCFunction)Receiver_recv, METH_VARARGS, "The datagrams queued on socket fd (at most n)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "flowpipe._udp.Receiver",
    .tp_basicsize = sizeof(Receiver),
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Buffers for reading many UDP datagrams per system call.",
    .tp_methods = Receiver_methods,
    .tp_new = Receiver_new,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_udp", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__udp(void) {
    if (PyType_Ready(&ReceiverType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Receiver", (PyObject *)&ReceiverType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
