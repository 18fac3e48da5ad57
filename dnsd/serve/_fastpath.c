/* The UDP hot loop of dnsd in C: one recvmmsg, a dictionary lookup per query, one sendmmsg.
 *
 * Optional accelerator for `mmsg.Batch.answer_known` (the pure-Python version there is the
 * specification, and tests check that both send the same bytes to the same clients). It works
 * on the buffers a `Batch` owns (their addresses are passed in): a query whose bytes after its
 * 2-octet ID are a key of the dict `remembered` (or else for which the callable `recall` gives
 * bytes) is answered with its own ID followed by that value; every other datagram is handed
 * back to Python as (index, packet). Nothing here parses DNS.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_BATCH 256
#define DNS_HEADER 12 /* a shorter datagram is never looked up: Python answers it */

static int
lookup(PyObject *table, PyObject *key, PyObject **body)
{
    /* 1 and a borrowed reference to a bytes value when `key` is in the dict `table`; 0 when
       not (or when `table` is None); -1 with an exception set. */
    *body = NULL;
    if (table == Py_None)
        return 0;
    PyObject *found = PyDict_GetItemWithError(table, key);
    if (found == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyBytes_CheckExact(found))
        return 0; /* not a reply body: let Python decide */
    *body = found;
    return 1;
}

static int
recall_of(PyObject *recall, PyObject *key, PyObject **body)
{
    /* As `lookup`, but asking the callable `recall` (a new reference in *body, or NULL). */
    *body = NULL;
    if (recall == Py_None)
        return 0;
    PyObject *found = PyObject_CallOneArg(recall, key);
    if (found == NULL)
        return -1;
    if (!PyBytes_CheckExact(found)) {
        Py_DECREF(found);
        return 0;
    }
    *body = found;
    return 1;
}

static PyObject *
answer_known(PyObject *Py_UNUSED(self), PyObject *args)
{
    int fd;
    unsigned long long hdrs_addr, out_addr;
    unsigned int size;
    Py_ssize_t slot, name_size;
    PyObject *remembered, *recall, *hits, *recalled;

    if (!PyArg_ParseTuple(args, "iKIKnnOOO!O!", &fd, &hdrs_addr, &size, &out_addr, &slot,
                          &name_size, &remembered, &recall, &PyList_Type, &hits, &PyList_Type,
                          &recalled))
        return NULL;
    if (size == 0 || size > MAX_BATCH || slot < 14) {
        PyErr_SetString(PyExc_ValueError, "batch size must be 1..256 and slots >= 14 octets");
        return NULL;
    }
    if ((remembered != Py_None && !PyDict_CheckExact(remembered)) ||
        (recall != Py_None && !PyCallable_Check(recall))) {
        PyErr_SetString(PyExc_TypeError, "remembered must be a dict, recall a callable, or None");
        return NULL;
    }
    struct mmsghdr *recv = (struct mmsghdr *)(uintptr_t)hdrs_addr;
    unsigned char *out = (unsigned char *)(uintptr_t)out_addr;
    for (unsigned int i = 0; i < size; i++) /* the kernel shrinks it to the sender's size */
        recv[i].msg_hdr.msg_namelen = (socklen_t)name_size;

    int n = recvmmsg(fd, recv, size, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            n = 0;
        else
            return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *misses = PyList_New(0);
    if (misses == NULL)
        return NULL;

    struct mmsghdr send[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    unsigned int queued = 0;
    for (int i = 0; i < n; i++) {
        const unsigned char *packet = recv[i].msg_hdr.msg_iov->iov_base;
        Py_ssize_t length = recv[i].msg_len;
        PyObject *body = NULL, *into = hits; /* body: a new reference */
        if (length >= DNS_HEADER) {
            PyObject *key = PyBytes_FromStringAndSize((const char *)packet + 2, length - 2);
            if (key == NULL)
                goto fail;
            int found = lookup(remembered, key, &body);
            if (found == 1) {
                Py_INCREF(body);
            } else if (found == 0) {
                found = recall_of(recall, key, &body);
                into = recalled;
            }
            Py_DECREF(key);
            if (found < 0)
                goto fail;
            if (found && PyBytes_GET_SIZE(body) + 2 > slot)
                Py_CLEAR(body); /* does not fit a slot: Python sends it alone */
        }
        if (body == NULL) {
            PyObject *miss = Py_BuildValue("(iy#)", i, (const char *)packet, length);
            if (miss == NULL || PyList_Append(misses, miss) < 0) {
                Py_XDECREF(miss);
                goto fail;
            }
            Py_DECREF(miss);
            continue;
        }
        unsigned char *reply = out + (Py_ssize_t)i * slot;
        Py_ssize_t body_size = PyBytes_GET_SIZE(body);
        reply[0] = packet[0];
        reply[1] = packet[1];
        memcpy(reply + 2, PyBytes_AS_STRING(body), body_size);
        int appended = PyList_Append(into, body);
        Py_DECREF(body);
        if (appended < 0)
            goto fail;
        iov[queued].iov_base = reply;
        iov[queued].iov_len = body_size + 2;
        memset(&send[queued], 0, sizeof(send[queued]));
        send[queued].msg_hdr.msg_name = recv[i].msg_hdr.msg_name;
        send[queued].msg_hdr.msg_namelen = recv[i].msg_hdr.msg_namelen;
        send[queued].msg_hdr.msg_iov = &iov[queued];
        send[queued].msg_hdr.msg_iovlen = 1;
        queued++;
    }
    unsigned int sent = 0;
    while (sent < queued) { /* a full socket buffer: the client retries, as with any UDP loss */
        int done = sendmmsg(fd, send + sent, queued - sent, MSG_DONTWAIT);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            break;
        sent += done;
    }
    PyObject *result = Py_BuildValue("(iN)", n, misses);
    return result;

fail:
    Py_DECREF(misses);
    return NULL;
}

static PyMethodDef methods[] = {
    {"answer_known", answer_known, METH_VARARGS,
     "answer_known(fd, hdrs_addr, size, out_addr, slot, name_size, remembered, recall, hits, "
     "recalled) -> (received, misses): receive a batch, answer the known queries, send them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath", "The UDP hot loop of dnsd in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    return PyModule_Create(&module);
}
