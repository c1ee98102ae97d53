#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyObject *cvar, *lend_descr, *return_descr, *done_obj;

typedef struct { PyObject_HEAD PyObject *result; } Ready;
static void ready_dealloc(Ready *r) { Py_XDECREF(r->result); PyObject_Free(r); }
static PyObject *ready_await(PyObject *r) { Py_INCREF(r); return r; }
static PySendResult ready_send(Ready *r, PyObject *arg, PyObject **result) {
    PyObject *v = r->result ? r->result : Py_None;
    r->result = NULL;   /* hand over the reference */
    if (v == Py_None) Py_INCREF(v);
    *result = v; return PYGEN_RETURN;
}
static PyObject *ready_next(Ready *r) { PyObject *v; ready_send(r, Py_None, &v); _PyGen_SetStopIterationValue(v); Py_DECREF(v); return NULL; }
static PyAsyncMethods ready_async = { .am_await = ready_await, .am_send = (sendfunc)ready_send };
static PyTypeObject ReadyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cproto2.Ready", .tp_basicsize = sizeof(Ready),
    .tp_dealloc = (destructor)ready_dealloc, .tp_as_async = &ready_async,
    .tp_iter = PyObject_SelfIter, .tp_iternext = (iternextfunc)ready_next,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

typedef struct { PyObject_HEAD vectorcallfunc vc; PyObject *aop; PyObject *arena; PyObject *token; Ready *ready; int state; } Scope;
static PyTypeObject ScopeType;
static int scope_traverse(Scope *s, visitproc visit, void *arg) { Py_VISIT(s->aop); Py_VISIT(s->arena); Py_VISIT(s->token); return 0; }
static int scope_clear(Scope *s) { Py_CLEAR(s->aop); Py_CLEAR(s->arena); Py_CLEAR(s->token); Py_CLEAR(s->ready); return 0; }
static void scope_dealloc(Scope *s) { PyObject_GC_UnTrack(s); scope_clear(s); PyObject_GC_Del(s); }

static PyObject *scope_enter(Scope *s) {
    if (s->state != 0) { PyErr_SetString(PyExc_RuntimeError, "reused"); return NULL; }
    s->state = 2;
    PyObject *arena = PyObject_Vectorcall(lend_descr, &s->aop, 1, NULL);
    if (!arena) return NULL;
    if (arena == Py_None) { Py_DECREF(arena); PyErr_SetString(PyExc_RuntimeError, "slow path"); return NULL; }
    PyObject *token = PyContextVar_Set(cvar, arena);
    if (!token) { Py_DECREF(arena); return NULL; }
    s->token = token; s->state = 1;
    Ready *r = s->ready;
    if (r != NULL && Py_REFCNT(r) == 1) { Py_INCREF(r); }
    else {
        r = PyObject_New(Ready, &ReadyType);
        if (!r) { s->arena = arena; return NULL; }
        r->result = NULL;
        Py_XSETREF(s->ready, r); Py_INCREF(r);
    }
    Py_INCREF(arena); Py_XSETREF(r->result, arena);
    s->arena = arena;
    return (PyObject*)r;
}

static PyObject *scope_exit(Scope *s) {
    if (s->state == 1) {
        PyObject *arena = s->arena, *token = s->token;
        s->arena = NULL; s->token = NULL; s->state = 2;
        if (PyContextVar_Reset(cvar, token) < 0) {
            if (PyErr_ExceptionMatches(PyExc_ValueError)) PyErr_Clear();
            else { Py_DECREF(arena); Py_DECREF(token); return NULL; }
        }
        Py_DECREF(token);
        PyObject *args[2] = {s->aop, arena};
        PyObject *r = PyObject_Vectorcall(return_descr, args, 2, NULL);
        Py_DECREF(arena);
        if (!r) return NULL;
        Py_DECREF(r);
    }
    Py_INCREF(done_obj); return done_obj;
}

static PyObject *scope_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kw) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (kw == NULL || PyTuple_GET_SIZE(kw) == 0) {
        if (n == 0) return scope_enter((Scope*)self);
        if (n == 3) return scope_exit((Scope*)self);
    }
    PyErr_SetString(PyExc_TypeError, "0 or 3 args"); return NULL;
}

/* descriptor: instance access gives the instance */
typedef struct { PyObject_HEAD } Itself;
static PyObject *itself_get(PyObject *d, PyObject *obj, PyObject *type) { PyObject *r = obj ? obj : d; Py_INCREF(r); return r; }
static PyTypeObject ItselfType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cproto2.Itself", .tp_basicsize = sizeof(Itself),
    .tp_flags = Py_TPFLAGS_DEFAULT, .tp_descr_get = itself_get,
};

static PyTypeObject ScopeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cproto2.Scope", .tp_basicsize = sizeof(Scope),
    .tp_dealloc = (destructor)scope_dealloc, .tp_traverse = (traverseproc)scope_traverse,
    .tp_clear = (inquiry)scope_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Scope, vc),
    .tp_call = PyVectorcall_Call,
};

/* maker: reuse the last scope if nothing else refers to it */
typedef struct { PyObject_HEAD vectorcallfunc vc; PyObject *aop; Scope *last; } Maker;
static PyObject *maker_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kw) {
    Maker *m = (Maker*)self;
    Scope *s = m->last;
    if (s != NULL && Py_REFCNT(s) == 1) {
        Py_CLEAR(s->arena); Py_CLEAR(s->token); s->state = 0;
        Py_INCREF(s); return (PyObject*)s;
    }
    s = PyObject_GC_New(Scope, &ScopeType);
    if (!s) return NULL;
    s->vc = scope_call; Py_INCREF(m->aop); s->aop = m->aop; s->arena = NULL; s->token = NULL; s->ready = NULL; s->state = 0;
    PyObject_GC_Track(s);
    Py_XSETREF(m->last, s); Py_INCREF(s);
    return (PyObject*)s;
}
static void maker_dealloc(Maker *m) { Py_XDECREF(m->aop); Py_XDECREF(m->last); PyObject_Free(m); }
static PyTypeObject MakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cproto2.Maker", .tp_basicsize = sizeof(Maker),
    .tp_dealloc = (destructor)maker_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Maker, vc), .tp_call = PyVectorcall_Call,
};
static PyObject *make_maker(PyObject *mod, PyObject *aop) {
    Maker *m = PyObject_New(Maker, &MakerType); m->vc = maker_call; Py_INCREF(aop); m->aop = aop; m->last = NULL; return (PyObject*)m;
}
static PyObject *setup(PyObject *m, PyObject *const *a, Py_ssize_t n) {
    cvar = a[0]; lend_descr = a[1]; return_descr = a[2]; done_obj = a[3];
    Py_INCREF(cvar); Py_INCREF(lend_descr); Py_INCREF(return_descr); Py_INCREF(done_obj); Py_RETURN_NONE;
}
static PyMethodDef mod_methods[] = { {"setup", (PyCFunction)(void(*)(void))setup, METH_FASTCALL, NULL}, {"maker", make_maker, METH_O, NULL}, {NULL} };
static struct PyModuleDef mod = { PyModuleDef_HEAD_INIT, "_cproto2", NULL, -1, mod_methods };
PyMODINIT_FUNC PyInit__cproto2(void) {
    if (PyType_Ready(&ReadyType) < 0 || PyType_Ready(&ItselfType) < 0 || PyType_Ready(&MakerType) < 0) return NULL;
    PyObject *d = PyDict_New();
    PyObject *it = PyObject_New(PyObject, &ItselfType);
    PyDict_SetItemString(d, "__aenter__", it); PyDict_SetItemString(d, "__aexit__", it);
    ScopeType.tp_dict = d;
    if (PyType_Ready(&ScopeType) < 0) return NULL;
    PyObject *m = PyModule_Create(&mod);
    Py_INCREF(&ScopeType); PyModule_AddObject(m, "Scope", (PyObject*)&ScopeType);
    return m;
}
