/*
 * hms_cffi._fast: the compiled fast path of the hottest calls.
 *
 * CFFI is the binding of everything (hms_cffi._native); this module only
 * takes over the two calls whose cost is mostly the binding's own:
 * Method.call_raw (hms_method_call) and the batches (hms_call_batch). Each
 * is one C function that converts its arguments with the cheapest C-API
 * calls, crosses into the core once WITHOUT the GIL, and copies the answer
 * out into one new bytes object.
 *
 *   Binding(handle, fmt, owner).call(request) -> bytes
 *       hms_method_call through one method handle: Method.call_raw is the
 *       bound `call` of a Binding (a builtin method: no Python frame).
 *   call_batch(handles, requests) -> (answers, codes or None)
 *       builds the batch frame, runs hms_call_batch and splits the result
 *       frame; codes is None when every call answered HMS_OK.
 *   thread_buffers() -> (out capacity, err capacity, in use)
 *       this thread's pair, for tests.
 *   set_error_factory(fn)
 *       fn(rc, status, fmt, owner) returns (or raises) the exception of a
 *       failed call: status is the hms.v1.Status bytes the core wrote, fmt
 *       their format, owner the Binding's owner (None for a batch). The
 *       mapping of statuses to exceptions stays in Python (hms_cffi.methods).
 *
 * The GIL is released around every call into the core: the core may run
 * Python handlers and hooks, on this thread or on others, and they need it.
 *
 * Output buffers: one pair of hms_buf per thread (a pthread key, whose
 * destructor frees them when the thread exits), reused call after call as
 * the header recommends; an output whose capacity passed 1 MiB is freed
 * after use so that one large answer does not pin memory in every thread.
 * A call made while the thread's pair is in use (a Python handler, run by
 * the core on this thread during an outer call, calling back in) gets a
 * pair of its own, freed at its end: the outer call's answer is never
 * clobbered. Each answer is copied out before anything else can run on the
 * thread (no Python code runs between the core's return and the copy).
 *
 * Limited API (abi3, Python >= 3.11), like hms_cffi._native; linked against
 * the package's libhms_ffi with an rpath of $ORIGIN (see setup.py).
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000 /* setup.py defines it too */
#endif
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hms_ffi.h"

/* An output buffer whose capacity grew past this is freed after use (as
 * hms_cffi._ffi.Buffers does). */
#define KEEP_CAPACITY ((size_t)1 << 20)

/* ------------------------------------------------------------------------ */
/* Per-thread buffers                                                       */
/* ------------------------------------------------------------------------ */

typedef struct {
    hms_buf out;
    hms_buf err;
    int busy; /* a call of this thread is using out/err right now */
} thread_bufs;

static pthread_key_t bufs_key;
static int bufs_key_made = 0;

/* Runs when a thread that used the fast path exits (never for the main
 * thread, whose memory the process gives back at exit). No GIL needed. */
static void thread_bufs_free(void *ptr)
{
    thread_bufs *bufs = ptr;
    hms_buf_free(&bufs->out);
    hms_buf_free(&bufs->err);
    free(bufs);
}

/* This thread's pair, made on first use; NULL (MemoryError set) when out
 * of memory. Called with the GIL held. */
static thread_bufs *thread_bufs_get(void)
{
    thread_bufs *bufs = pthread_getspecific(bufs_key);
    if (bufs != NULL) {
        return bufs;
    }
    bufs = calloc(1, sizeof *bufs);
    if (bufs == NULL || pthread_setspecific(bufs_key, bufs) != 0) {
        free(bufs);
        PyErr_NoMemory();
        return NULL;
    }
    return bufs;
}

/* The buffers one call writes into: the thread's pair, or a pair of its own
 * when the thread's pair is in use by an outer call. */
typedef struct {
    thread_bufs *owner; /* NULL: `own` is used */
    thread_bufs own;
    hms_buf *out;
    hms_buf *err;
} call_bufs;

static int call_bufs_acquire(call_bufs *cb)
{
    thread_bufs *bufs = thread_bufs_get();
    if (bufs == NULL) {
        return -1;
    }
    if (bufs->busy) {
        memset(&cb->own, 0, sizeof cb->own);
        cb->owner = NULL;
        cb->out = &cb->own.out;
        cb->err = &cb->own.err;
    } else {
        bufs->busy = 1;
        cb->owner = bufs;
        cb->out = &bufs->out;
        cb->err = &bufs->err;
    }
    return 0;
}

static void call_bufs_release(call_bufs *cb)
{
    if (cb->owner == NULL) {
        hms_buf_free(cb->out);
        hms_buf_free(cb->err);
        return;
    }
    if (cb->out->cap > KEEP_CAPACITY) {
        hms_buf_free(cb->out);
    }
    if (cb->err->cap > KEEP_CAPACITY) {
        hms_buf_free(cb->err);
    }
    cb->owner->busy = 0;
}

/* A new bytes holding the latest output of buf. */
static PyObject *bytes_of(const hms_buf *buf)
{
    if (buf->len == 0 || buf->data == NULL) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    if (buf->len > (size_t)PY_SSIZE_T_MAX) {
        return PyErr_NoMemory();
    }
    return PyBytes_FromStringAndSize((const char *)buf->data, (Py_ssize_t)buf->len);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static PyObject *error_factory = NULL;

/* Raises the exception of status rc described by `status` (stolen): what
 * the error factory returns, or what it raises. Returns NULL. */
static PyObject *raise_status(int32_t rc, PyObject *status, int32_t fmt, PyObject *owner)
{
    PyObject *exc;
    if (status == NULL) {
        return NULL;
    }
    if (error_factory == NULL) {
        Py_DECREF(status);
        PyErr_Format(PyExc_RuntimeError,
                     "hms_cffi._fast: status %d and no error factory registered", (int)rc);
        return NULL;
    }
    exc = PyObject_CallFunction(error_factory, "iOiO", (int)rc, status, (int)fmt,
                                owner != NULL ? owner : Py_None);
    Py_DECREF(status);
    if (exc == NULL) {
        return NULL; /* the factory raised (e.g. ClosedError) */
    }
    if (!PyExceptionInstance_Check(exc)) {
        Py_DECREF(exc);
        PyErr_SetString(PyExc_TypeError, "hms_cffi._fast: the error factory must return an exception");
        return NULL;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* An hms.v1.Status in JSON, for failures found on this side. */
static PyObject *raise_local(int32_t rc, const char *message)
{
    PyObject *status = PyBytes_FromFormat(
        "{\"code\":%d,\"message\":\"%s\",\"origin\":\"hms_cffi\"}", (int)rc, message);
    return raise_status(rc, status, HMS_FORMAT_JSON, NULL);
}

static PyObject *fast_set_error_factory(PyObject *module, PyObject *factory)
{
    (void)module;
    if (!PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError, "the error factory must be callable");
        return NULL;
    }
    Py_INCREF(factory);
    Py_XDECREF(error_factory);
    error_factory = factory;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* Requests: bytes, or any C-contiguous buffer                              */
/* ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *ptr;
    size_t len;
    Py_buffer view;
    int has_view;
} request_bytes;

static int request_open(PyObject *obj, request_bytes *req)
{
    req->has_view = 0;
    if (PyBytes_Check(obj)) {
        char *ptr;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(obj, &ptr, &len) < 0) {
            return -1;
        }
        req->ptr = (const uint8_t *)ptr;
        req->len = (size_t)len;
        return 0;
    }
    /* The export stays open until request_close: a bytearray cannot be
     * resized under the core while the GIL is released. */
    if (PyObject_GetBuffer(obj, &req->view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    req->has_view = 1;
    req->ptr = req->view.buf;
    req->len = (size_t)req->view.len;
    return 0;
}

static void request_close(request_bytes *req)
{
    if (req->has_view) {
        PyBuffer_Release(&req->view);
        req->has_view = 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Binding: one method handle, its format and its owner                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    uint64_t handle;
    int32_t fmt;
    PyObject *owner; /* handed to the error factory (the Method), or None */
} Binding;

static PyObject *binding_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *handle_obj, *owner;
    int fmt;
    unsigned long long handle;
    Binding *self;
    allocfunc alloc;
    static char *keywords[] = {"handle", "fmt", "owner", NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OiO:Binding", keywords, &handle_obj, &fmt,
                                     &owner)) {
        return NULL;
    }
    handle = PyLong_AsUnsignedLongLong(handle_obj);
    if (handle == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    self = (Binding *)alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->handle = (uint64_t)handle;
    self->fmt = (int32_t)fmt;
    Py_INCREF(owner);
    self->owner = owner;
    return (PyObject *)self;
}

static int binding_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((Binding *)self)->owner);
    return 0;
}

static int binding_clear(PyObject *self)
{
    Binding *b = (Binding *)self;
    PyObject *owner = b->owner;
    b->owner = NULL;
    Py_XDECREF(owner);
    return 0;
}

static void binding_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);
    PyObject_GC_UnTrack(self);
    binding_clear(self);
    tp_free(self);
    Py_DECREF(type);
}

/* Binding.call(request) -> bytes: hms_method_call, GIL released. */
static PyObject *binding_call(PyObject *self, PyObject *request)
{
    Binding *b = (Binding *)self;
    request_bytes req;
    call_bufs cb;
    int32_t rc;
    PyObject *answer;

    if (request_open(request, &req) < 0) {
        return NULL;
    }
    if (call_bufs_acquire(&cb) < 0) {
        request_close(&req);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = hms_method_call(b->handle, req.ptr, req.len, cb.out, cb.err);
    Py_END_ALLOW_THREADS
    /* Copied out before anything else runs on this thread. */
    answer = bytes_of(rc == HMS_OK ? cb.out : cb.err);
    call_bufs_release(&cb);
    request_close(&req);
    if (rc == HMS_OK) {
        return answer;
    }
    return raise_status(rc, answer, b->fmt, b->owner);
}

static PyObject *binding_get_handle(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(((Binding *)self)->handle);
}

static PyMethodDef binding_methods[] = {
    {"call", binding_call, METH_O,
     "call(request, /) -> bytes\n--\n\n"
     "hms_method_call through this handle: request (bytes or any C-contiguous\n"
     "buffer) in the handle's format in, the answer out; raises what the\n"
     "error factory makes of a failure."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef binding_getset[] = {
    {"handle", binding_get_handle, NULL, "The method handle.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot binding_slots[] = {
    {Py_tp_doc, "Binding(handle, fmt, owner)\n--\n\n"
                "One method handle bound to its format and owner; `call` is\n"
                "hms_method_call. The owner is passed to the error factory."},
    {Py_tp_new, binding_new},
    {Py_tp_dealloc, binding_dealloc},
    {Py_tp_traverse, binding_traverse},
    {Py_tp_clear, binding_clear},
    {Py_tp_methods, binding_methods},
    {Py_tp_getset, binding_getset},
    {0, NULL},
};

static PyType_Spec binding_spec = {
    "hms_cffi._fast.Binding",
    sizeof(Binding),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    binding_slots,
};

/* ------------------------------------------------------------------------ */
/* Batches                                                                  */
/* ------------------------------------------------------------------------ */

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* The i-th item of a list or tuple (borrowed). */
static PyObject *item_of(PyObject *seq, Py_ssize_t i)
{
    return PyList_Check(seq) ? PyList_GetItem(seq, i) : PyTuple_GetItem(seq, i);
}

/* The length of a bytes-like item, -1 with an exception set. */
static Py_ssize_t item_len(PyObject *item)
{
    Py_buffer view;
    Py_ssize_t len;
    if (PyBytes_Check(item)) {
        return PyBytes_Size(item);
    }
    if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    len = view.len;
    PyBuffer_Release(&view);
    return len;
}

/* Copies a bytes-like item to dst, which has room for `room` bytes.
 * Returns its length, -1 with an exception set. */
static Py_ssize_t item_copy(PyObject *item, uint8_t *dst, size_t room)
{
    Py_buffer view;
    Py_ssize_t len;
    if (PyBytes_Check(item)) {
        len = PyBytes_Size(item);
        if ((size_t)len <= room) {
            memcpy(dst, PyBytes_AsString(item), (size_t)len);
            return len;
        }
    } else {
        if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0) {
            return -1;
        }
        len = view.len;
        if ((size_t)len <= room) {
            memcpy(dst, view.buf, (size_t)len);
        }
        PyBuffer_Release(&view);
        if ((size_t)len <= room) {
            return len;
        }
    }
    PyErr_SetString(PyExc_BufferError, "a request grew while the batch was built");
    return -1;
}

/* The batch frame of `requests` (a list or tuple) through `handles` (a
 * buffer of native uint64, one per request), malloc'd; NULL with an
 * exception set. */
static uint8_t *build_frame(PyObject *handles, PyObject *requests, Py_ssize_t count,
                            size_t *frame_len)
{
    Py_buffer hv;
    size_t header, total = 0, end = 0;
    uint8_t *frame, *ends, *area;

    if ((size_t)count > ((size_t)PY_SSIZE_T_MAX / 8 - 1) / 2) {
        PyErr_NoMemory();
        return NULL;
    }
    header = 8 * (1 + 2 * (size_t)count);
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t len = item_len(item_of(requests, i));
        if (len < 0) {
            return NULL;
        }
        if ((size_t)len > (size_t)PY_SSIZE_T_MAX - header - total) {
            PyErr_NoMemory();
            return NULL;
        }
        total += (size_t)len;
    }
    if (PyObject_GetBuffer(handles, &hv, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (hv.len != 8 * count) {
        PyBuffer_Release(&hv);
        PyErr_SetString(PyExc_ValueError, "handles must hold one uint64 per request");
        return NULL;
    }
    frame = malloc(header + total > 0 ? header + total : 1);
    if (frame == NULL) {
        PyBuffer_Release(&hv);
        PyErr_NoMemory();
        return NULL;
    }
    put_le64(frame, (uint64_t)count);
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t handle;
        memcpy(&handle, (const uint8_t *)hv.buf + 8 * i, 8);
        put_le64(frame + 8 * (1 + i), handle);
    }
    PyBuffer_Release(&hv);
    ends = frame + 8 * (1 + (size_t)count);
    area = frame + header;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t len = item_copy(item_of(requests, i), area + end, total - end);
        if (len < 0) {
            free(frame);
            return NULL;
        }
        end += (size_t)len;
        put_le64(ends + 8 * i, (uint64_t)end);
    }
    if (end != total) {
        free(frame);
        PyErr_SetString(PyExc_BufferError, "a request shrank while the batch was built");
        return NULL;
    }
    *frame_len = header + total;
    return frame;
}

/* (answers, codes or None) from a result frame of `count` calls; NULL with
 * an exception set when the frame is malformed. */
static PyObject *split_results(const hms_buf *results, Py_ssize_t count)
{
    const uint8_t *data = results->data;
    size_t len = results->len, header = 8 * (1 + 2 * (size_t)count), start = 0, area_len;
    const uint8_t *codes, *ends, *area;
    PyObject *answers = NULL, *code_list = NULL, *pair;
    int failed = 0;

    if (data == NULL || len < header || get_le64(data) != (uint64_t)count) {
        return raise_local(HMS_INTERNAL, "malformed batch result frame");
    }
    codes = data + 8;
    ends = codes + 8 * (size_t)count;
    area = data + header;
    area_len = len - header;
    answers = PyList_New(count);
    if (answers == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t end = get_le64(ends + 8 * i);
        PyObject *answer;
        if (end < start || end > area_len) {
            Py_DECREF(answers);
            return raise_local(HMS_INTERNAL, "malformed batch result frame");
        }
        answer = PyBytes_FromStringAndSize((const char *)area + start, (Py_ssize_t)(end - start));
        if (answer == NULL || PyList_SetItem(answers, i, answer) < 0) {
            Py_DECREF(answers);
            return NULL;
        }
        start = (size_t)end;
        failed |= get_le64(codes + 8 * i) != 0;
    }
    if (failed) {
        code_list = PyList_New(count);
        if (code_list == NULL) {
            Py_DECREF(answers);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *code = PyLong_FromUnsignedLongLong(get_le64(codes + 8 * i));
            if (code == NULL || PyList_SetItem(code_list, i, code) < 0) {
                Py_DECREF(answers);
                Py_DECREF(code_list);
                return NULL;
            }
        }
    } else {
        code_list = Py_None;
        Py_INCREF(code_list);
    }
    pair = PyTuple_Pack(2, answers, code_list);
    Py_DECREF(answers);
    Py_DECREF(code_list);
    return pair;
}

/* call_batch(handles, requests) -> (answers, codes or None) */
static PyObject *fast_call_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *requests, *result = NULL, *status;
    Py_ssize_t count;
    uint8_t *frame;
    size_t frame_len = 0;
    call_bufs cb;
    int32_t rc;

    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "call_batch(handles, requests) takes 2 arguments");
        return NULL;
    }
    if (PyList_Check(args[1]) || PyTuple_Check(args[1])) {
        requests = args[1];
        Py_INCREF(requests);
    } else {
        requests = PySequence_List(args[1]);
        if (requests == NULL) {
            return NULL;
        }
    }
    count = PyList_Check(requests) ? PyList_Size(requests) : PyTuple_Size(requests);
    frame = build_frame(args[0], requests, count, &frame_len);
    Py_DECREF(requests);
    if (frame == NULL) {
        return NULL;
    }
    if (call_bufs_acquire(&cb) < 0) {
        free(frame);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = hms_call_batch(frame, frame_len, cb.out, cb.err);
    free(frame);
    Py_END_ALLOW_THREADS
    /* Copied out before anything else runs on this thread. */
    if (rc == HMS_OK) {
        result = split_results(cb.out, count);
        call_bufs_release(&cb);
        return result;
    }
    status = bytes_of(cb.err);
    call_bufs_release(&cb);
    return raise_status(rc, status, HMS_FORMAT_JSON, NULL);
}

/* ------------------------------------------------------------------------ */
/* Module                                                                   */
/* ------------------------------------------------------------------------ */

/* thread_buffers() -> (output capacity, error capacity, in use) */
static PyObject *fast_thread_buffers(PyObject *module, PyObject *unused)
{
    thread_bufs *bufs = pthread_getspecific(bufs_key);
    (void)module;
    (void)unused;
    if (bufs == NULL) {
        return Py_BuildValue("(nnO)", (Py_ssize_t)0, (Py_ssize_t)0, Py_False);
    }
    return Py_BuildValue("(nnO)", (Py_ssize_t)bufs->out.cap, (Py_ssize_t)bufs->err.cap,
                         bufs->busy ? Py_True : Py_False);
}

static PyMethodDef fast_functions[] = {
    {"call_batch", (PyCFunction)(void (*)(void))fast_call_batch, METH_FASTCALL,
     "call_batch(handles, requests, /) -> (answers, codes)\n--\n\n"
     "hms_call_batch: handles is a buffer of native uint64 (an array('Q')),\n"
     "one per request; requests a sequence of bytes-like objects. Returns\n"
     "the answers in order and the status code of every call, or None for\n"
     "the codes when every call answered HMS_OK."},
    {"set_error_factory", fast_set_error_factory, METH_O,
     "set_error_factory(factory, /)\n--\n\n"
     "factory(rc, status, fmt, owner) returns (or raises) the exception of a\n"
     "failed call."},
    {"thread_buffers", fast_thread_buffers, METH_NOARGS,
     "thread_buffers() -> (out_capacity, err_capacity, in_use)\n--\n\n"
     "The state of this thread's pair of hms_buf (zeros before its first\n"
     "call), for tests."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    "hms_cffi._fast",
    "The compiled fast path of hms_cffi: Method.call_raw and batches (see _fast.c).",
    -1,
    fast_functions,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__fast(void)
{
    PyObject *module, *binding_type;
    uint32_t abi = hms_abi_version();

    if (abi >> 16 != HMS_ABI_VERSION_MAJOR || (abi & 0xFFFF) < HMS_ABI_VERSION_MINOR) {
        PyErr_Format(PyExc_ImportError,
                     "hms_cffi._fast: libhms_ffi ABI %u.%u, built for %d.%d", abi >> 16,
                     abi & 0xFFFF, HMS_ABI_VERSION_MAJOR, HMS_ABI_VERSION_MINOR);
        return NULL;
    }
    if (!bufs_key_made) {
        if (pthread_key_create(&bufs_key, thread_bufs_free) != 0) {
            PyErr_SetString(PyExc_ImportError, "hms_cffi._fast: pthread_key_create failed");
            return NULL;
        }
        bufs_key_made = 1;
    }
    module = PyModule_Create(&fast_module);
    if (module == NULL) {
        return NULL;
    }
    binding_type = PyType_FromSpec(&binding_spec);
    if (binding_type == NULL || PyModule_AddObject(module, "Binding", binding_type) < 0) {
        Py_XDECREF(binding_type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
