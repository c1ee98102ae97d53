/* electron._cscope: ArenaScope in C, for the compiled core.
 *
 * electron/_scope.py is the reference: what the pure-Python core runs, what type checkers
 * read and what the docs describe. This is the same class for the compiled core, because
 * every request enters and leaves a scope and the interpreter's async-with protocol is
 * cheapest against C: the scope is its own __aenter__/__aexit__ (a descriptor returns the
 * instance; a call with no arguments enters, with three leaves), the awaitable __aenter__
 * returns is a tiny object finished from the start, and both it and the scope itself are
 * reused once their reference counts show that nothing else holds them (only where
 * electron._memory.REVIVE allows). The loan and the return stay in the compiled core
 * (ArenaOfPools._lend_nowait, get_arena, _return_from_scope); waiting for the budget stays
 * in Python (electron.aio._wait.enter_when_lent, imported on that slow path only).
 * The same tests run against both implementations (CI runs the suite on both cores).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#if defined(Py_GIL_DISABLED)
#error "electron._cscope relies on the GIL; setup.py does not build it for free-threaded builds"
#endif

enum { FRESH = 0, INSIDE = 1, SPENT = 2 };

/* Set by configure() (electron/_scope.py, on the first pool) and kept from then on. */
static PyObject *current_arena_var; /* electron._context.current_arena_var */
static PyObject *lend_nowait;       /* ArenaOfPools._lend_nowait (unbound) */
static PyObject *get_arena;         /* ArenaOfPools.get_arena (unbound) */
static PyObject *return_from_scope; /* ArenaOfPools._return_from_scope (unbound) */
static PyObject *done;              /* electron._done.DONE */
static PyObject *check_timeout;     /* electron._memory.check_timeout */
static int revive;                  /* electron._memory.REVIVE */
static PyObject *enter_when_lent;   /* electron.aio._wait.enter_when_lent, on first wait */

static const char REUSED[] = "an arena scope can be entered only once; call aop.arena() again";
static const char COPIED[] = "an arena scope cannot be copied; call aop.arena() for another";

static int
configured(void)
{
    if (current_arena_var == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "electron._cscope is not configured");
        return 0;
    }
    return 1;
}

/* ---- Ready: what __aenter__ returns when it took the arena at once ------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *result; /* handed over by the first send; NULL afterwards */
} Ready;

static int
ready_traverse(Ready *r, visitproc visit, void *arg)
{
    Py_VISIT(r->result);
    return 0;
}

static int
ready_clear(Ready *r)
{
    Py_CLEAR(r->result);
    return 0;
}

static void
ready_dealloc(Ready *r)
{
    PyObject_GC_UnTrack(r);
    Py_XDECREF(r->result);
    PyObject_GC_Del(r);
}

static PyObject *
ready_await(PyObject *r)
{
    Py_INCREF(r);
    return r;
}

static PySendResult
ready_send(Ready *r, PyObject *arg, PyObject **result)
{
    PyObject *v = r->result;
    r->result = NULL;
    if (v == NULL) {
        v = Py_None;
        Py_INCREF(v);
    }
    *result = v;
    return PYGEN_RETURN;
}

static PyObject *
ready_next(Ready *r)
{
    PyObject *v;
    ready_send(r, Py_None, &v);
    /* An exception instance, so that a tuple result is not taken for arguments. */
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, v);
    Py_DECREF(v);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *
ready_method_send(Ready *r, PyObject *arg)
{
    return ready_next(r);
}

static PyObject *
ready_throw(Ready *r, PyObject *const *args, Py_ssize_t nargs)
{
    /* Like a coroutine that has not started: the exception goes back out. */
    Py_CLEAR(r->result);
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    PyObject *typ = args[0];
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    }
    else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, nargs > 1 ? args[1] : NULL);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
    }
    return NULL;
}

static PyObject *
ready_close(Ready *r, PyObject *unused)
{
    Py_CLEAR(r->result);
    Py_RETURN_NONE;
}

static PyMethodDef ready_methods[] = {
    {"send", (PyCFunction)ready_method_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))ready_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)ready_close, METH_NOARGS, NULL},
    {NULL},
};

static PyAsyncMethods ready_async = {
    .am_await = ready_await,
    .am_send = (sendfunc)ready_send,
};

static PyTypeObject ReadyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "electron._scope.Ready",
    .tp_doc = "What entering an arena scope returns: awaiting it gives the arena at once.",
    .tp_basicsize = sizeof(Ready),
    .tp_dealloc = (destructor)ready_dealloc,
    .tp_as_async = &ready_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ready_next,
    .tp_methods = ready_methods,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)ready_traverse,
    .tp_clear = (inquiry)ready_clear,
};

/* ---- ArenaScope ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *aop;
    PyObject *arena;   /* while INSIDE */
    PyObject *token;   /* while INSIDE */
    PyObject *timeout; /* a float, or NULL for none */
    Ready *ready;      /* kept for reuse */
    int state;
} Scope;

static PyTypeObject ScopeType;

#define Scope_Check(op) Py_IS_TYPE((op), &ScopeType)

static int
scope_traverse(Scope *s, visitproc visit, void *arg)
{
    Py_VISIT(s->aop);
    Py_VISIT(s->arena);
    Py_VISIT(s->token);
    Py_VISIT(s->timeout);
    Py_VISIT(s->ready);
    return 0;
}

static int
scope_clear(Scope *s)
{
    Py_CLEAR(s->aop);
    Py_CLEAR(s->arena);
    Py_CLEAR(s->token);
    Py_CLEAR(s->timeout);
    Py_CLEAR(s->ready);
    return 0;
}

static void
scope_dealloc(Scope *s)
{
    PyObject_GC_UnTrack(s);
    scope_clear(s);
    PyObject_GC_Del(s);
}

static PyObject *scope_vectorcall(PyObject *, PyObject *const *, size_t, PyObject *);

static Scope *
scope_make(PyObject *aop, PyObject *timeout)
{
    Scope *s = PyObject_GC_New(Scope, &ScopeType);
    if (s == NULL) {
        return NULL;
    }
    s->vectorcall = scope_vectorcall;
    Py_INCREF(aop);
    s->aop = aop;
    s->arena = s->token = NULL;
    Py_XINCREF(timeout);
    s->timeout = timeout;
    s->ready = NULL;
    s->state = FRESH;
    PyObject_GC_Track(s);
    return s;
}

/* None stays NULL; anything else goes through check_timeout (a typed error for bad values). */
static int
checked_timeout(PyObject *timeout, PyObject **out)
{
    *out = NULL;
    if (timeout == NULL || timeout == Py_None) {
        return 0;
    }
    *out = PyObject_CallOneArg(check_timeout, timeout);
    return *out == NULL ? -1 : 0;
}

static PyObject *
scope_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"aop", "timeout", NULL};
    PyObject *aop, *timeout = NULL, *checked;
    if (!configured()) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:ArenaScope", kwlist, &aop, &timeout)) {
        return NULL;
    }
    if (checked_timeout(timeout, &checked) < 0) {
        return NULL;
    }
    Scope *s = scope_make(aop, checked);
    Py_XDECREF(checked);
    return (PyObject *)s;
}

/* Make the scope current with ``arena`` (a new reference, which the scope takes). */
static int
scope_set(Scope *s, PyObject *arena)
{
    PyObject *token = PyContextVar_Set(current_arena_var, arena);
    if (token == NULL) {
        Py_DECREF(arena);
        return -1;
    }
    s->token = token;
    s->arena = arena;
    s->state = INSIDE;
    return 0;
}

/* The exception being raised gets the fetched one (exc, val, tb: references it takes) as
 * its __context__, as a ``finally`` block that raises would. */
static void
chain_context(PyObject *exc, PyObject *val, PyObject *tb)
{
    PyObject *exc2, *val2, *tb2;
    PyErr_Fetch(&exc2, &val2, &tb2);
    PyErr_NormalizeException(&exc2, &val2, &tb2);
    PyErr_NormalizeException(&exc, &val, &tb);
    if (val != NULL && val2 != NULL && val != val2) {
        if (tb != NULL) {
            PyException_SetTraceback(val, tb);
        }
        PyException_SetContext(val2, val); /* steals val */
        val = NULL;
    }
    Py_XDECREF(exc);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    PyErr_Restore(exc2, val2, tb2);
}

/* After a failure: give ``arena`` back, keeping the exception being raised (or, if the
 * return fails too, raising the return's, chained to it). ``arena`` is borrowed. */
static PyObject *
give_back_failed(Scope *s, PyObject *arena)
{
    PyObject *exc, *val, *tb;
    PyErr_Fetch(&exc, &val, &tb);
    PyObject *args[2] = {s->aop, arena};
    PyObject *res = PyObject_Vectorcall(return_from_scope, args, 2, NULL);
    if (res == NULL) {
        chain_context(exc, val, tb);
        return NULL;
    }
    Py_DECREF(res);
    PyErr_Restore(exc, val, tb);
    return NULL;
}

static int
scope_cleared(Scope *s)
{
    if (s->aop == NULL) { /* only a scope the garbage collector cleared */
        PyErr_SetString(PyExc_RuntimeError, "this arena scope was cleared");
        return 1;
    }
    return 0;
}

static PyObject *
scope_enter_async(Scope *s)
{
    if (scope_cleared(s)) {
        return NULL;
    }
    if (s->state != FRESH) {
        PyErr_SetString(PyExc_RuntimeError, REUSED);
        return NULL;
    }
    s->state = SPENT; /* until inside: a second enter while this one waits must fail */
    PyObject *arena = PyObject_Vectorcall(lend_nowait, &s->aop, 1, NULL);
    if (arena == NULL) {
        return NULL;
    }
    if (arena == Py_None) { /* someone is queued or the budget is spent: wait, in Python */
        Py_DECREF(arena);
        if (enter_when_lent == NULL) {
            PyObject *mod = PyImport_ImportModule("electron.aio._wait");
            if (mod == NULL) {
                return NULL;
            }
            PyObject *fn = PyObject_GetAttrString(mod, "enter_when_lent");
            Py_DECREF(mod);
            if (fn == NULL) {
                return NULL;
            }
            Py_XSETREF(enter_when_lent, fn); /* the import may have let another thread in */
        }
        return PyObject_CallOneArg(enter_when_lent, (PyObject *)s);
    }
    Ready *r = s->ready;
    if (r != NULL && Py_REFCNT(r) == 1 && revive) {
        Py_CLEAR(r->result); /* a reused Ready was sent already, or never awaited */
    }
    else {
        r = PyObject_GC_New(Ready, &ReadyType);
        if (r == NULL) {
            give_back_failed(s, arena);
            Py_DECREF(arena);
            return NULL;
        }
        r->result = NULL;
        PyObject_GC_Track(r);
        Py_XSETREF(s->ready, r);
    }
    Py_INCREF(arena);
    r->result = arena;
    if (scope_set(s, arena) < 0) { /* it dropped our reference; the Ready still holds one */
        give_back_failed(s, r->result);
        Py_CLEAR(r->result);
        return NULL;
    }
    Py_INCREF(r);
    return (PyObject *)r;
}

/* Restore the outer arena and give this scope's back (unless closed already). */
static int
scope_leave(Scope *s)
{
    if (s->state != INSIDE || s->arena == NULL || s->token == NULL) {
        return 0;
    }
    PyObject *arena = s->arena, *token = s->token;
    s->state = SPENT;
    s->arena = s->token = NULL;
    int failed = 0;
    PyObject *exc = NULL, *val = NULL, *tb = NULL;
    if (PyContextVar_Reset(current_arena_var, token) < 0) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear(); /* left in another context than it was entered in */
        }
        else {
            failed = 1;
            PyErr_Fetch(&exc, &val, &tb);
        }
    }
    Py_DECREF(token);
    PyObject *args[2] = {s->aop, arena};
    PyObject *res = PyObject_Vectorcall(return_from_scope, args, 2, NULL);
    Py_DECREF(arena);
    if (res == NULL) {
        if (failed) {
            chain_context(exc, val, tb);
        }
        return -1;
    }
    Py_DECREF(res);
    if (failed) {
        PyErr_Restore(exc, val, tb);
        return -1;
    }
    return 0;
}

static PyObject *
scope_exit_async(Scope *s)
{
    if (scope_leave(s) < 0) {
        return NULL;
    }
    Py_INCREF(done);
    return done;
}

static PyObject *
scope_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) {
        if (nargs == 0) {
            return scope_enter_async((Scope *)self);
        }
        if (nargs == 3) {
            return scope_exit_async((Scope *)self);
        }
    }
    PyErr_SetString(PyExc_TypeError,
                    "an arena scope is called with no arguments (enter) or three (exit)");
    return NULL;
}

static PyObject *
scope_sync_enter(Scope *s, PyObject *unused)
{
    if (scope_cleared(s)) {
        return NULL;
    }
    if (s->state != FRESH) {
        PyErr_SetString(PyExc_RuntimeError, REUSED);
        return NULL;
    }
    s->state = SPENT;
    PyObject *args[2] = {s->aop, s->timeout != NULL ? s->timeout : Py_None};
    PyObject *arena = PyObject_Vectorcall(get_arena, args, 2, NULL);
    if (arena == NULL) {
        return NULL;
    }
    Py_INCREF(arena);
    if (scope_set(s, arena) < 0) { /* it dropped one of our two references */
        give_back_failed(s, arena);
        Py_DECREF(arena);
        return NULL;
    }
    return arena;
}

static PyObject *
scope_sync_exit(Scope *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes three arguments");
        return NULL;
    }
    if (scope_leave(s) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
scope_enter_when_lent(Scope *s, PyObject *arena)
{
    /* ``_enter(arena)``: what electron.aio._wait calls once it waited for the arena. */
    if (s->state != SPENT || s->arena != NULL || s->aop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_enter is for a scope waiting for its arena");
        return NULL;
    }
    Py_INCREF(arena);
    if (scope_set(s, arena) < 0) { /* it dropped our reference; the caller holds one */
        return give_back_failed(s, arena);
    }
    Py_RETURN_NONE;
}

static PyObject *
scope_copy(Scope *s, PyObject *unused)
{
    PyErr_SetString(PyExc_TypeError, COPIED);
    return NULL;
}

static PyObject *
scope_repr(Scope *s)
{
    static const char *names[] = {"fresh", "inside", "spent"};
    if (s->aop == NULL) {
        return PyUnicode_FromFormat("<ArenaScope %s, cleared>", names[s->state]);
    }
    return PyUnicode_FromFormat("<ArenaScope %s of %R>", names[s->state], s->aop);
}

static PyObject *
scope_get_timeout(Scope *s, void *closure)
{
    PyObject *t = s->timeout != NULL ? s->timeout : Py_None;
    Py_INCREF(t);
    return t;
}

static PyObject *
scope_get_aop(Scope *s, void *closure)
{
    if (scope_cleared(s)) {
        return NULL;
    }
    Py_INCREF(s->aop);
    return s->aop;
}

static PyGetSetDef scope_getset[] = {
    {"_aop", (getter)scope_get_aop, NULL, NULL, NULL},
    {"_timeout", (getter)scope_get_timeout, NULL, NULL, NULL},
    {NULL},
};

static PyMethodDef scope_methods[] = {
    {"__enter__", (PyCFunction)scope_sync_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))scope_sync_exit, METH_FASTCALL, NULL},
    {"_enter", (PyCFunction)scope_enter_when_lent, METH_O, NULL},
    {"__copy__", (PyCFunction)scope_copy, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)scope_copy, METH_O, NULL},
    {NULL},
};

static PyTypeObject ScopeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "electron._scope.ArenaScope",
    .tp_doc = "What ``aop.arena()`` returns: an async (or plain) context manager lending an "
              "arena.\n\nThe compiled core's implementation of electron/_scope.py's "
              "ArenaScope, which documents it.",
    .tp_basicsize = sizeof(Scope),
    .tp_dealloc = (destructor)scope_dealloc,
    .tp_vectorcall_offset = offsetof(Scope, vectorcall),
    .tp_repr = (reprfunc)scope_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_traverse = (traverseproc)scope_traverse,
    .tp_clear = (inquiry)scope_clear,
    .tp_methods = scope_methods,
    .tp_getset = scope_getset,
    .tp_new = scope_new,
};

/* ---- __aenter__ / __aexit__: on a scope, the scope itself ------------------------------ */

typedef struct {
    PyObject_HEAD
    int leaving;
} Itself;

static PyObject *
itself_get(PyObject *descr, PyObject *obj, PyObject *type)
{
    PyObject *r = obj != NULL ? obj : descr;
    Py_INCREF(r);
    return r;
}

/* On the class: called as the method would be, with the scope first (AsyncExitStack). */
static PyObject *
itself_call(PyObject *descr, PyObject *args, PyObject *kwargs)
{
    int leaving = ((Itself *)descr)->leaving;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) || n != (leaving ? 4 : 1)
        || !Scope_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_Format(PyExc_TypeError, "ArenaScope.%s takes an ArenaScope%s",
                     leaving ? "__aexit__" : "__aenter__",
                     leaving ? " and three more arguments" : "");
        return NULL;
    }
    Scope *s = (Scope *)PyTuple_GET_ITEM(args, 0);
    return leaving ? scope_exit_async(s) : scope_enter_async(s);
}

static PyTypeObject ItselfType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "electron._scope._Itself",
    .tp_doc = "ArenaScope.__aenter__/__aexit__: looked up on a scope, the scope itself.",
    .tp_basicsize = sizeof(Itself),
    .tp_descr_get = itself_get,
    .tp_call = itself_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

/* ---- Factory: what aop.arena() calls; reuses the scope it made last ------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *aop;
    Scope *last;
} Factory;

static PyObject *
factory_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Factory *f = (Factory *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "takes the checked timeout (a float or None)");
        return NULL;
    }
    PyObject *timeout = args[0] == Py_None ? NULL : args[0];
    Scope *s = f->last;
    if (revive && s != NULL && Py_REFCNT(s) == 1) {
        /* Nothing but this factory refers to it: it cannot be told from a new one. A scope
         * abandoned inside drops its arena here, which then goes back as a leak. */
        PyObject *arena = s->arena, *token = s->token, *old_timeout = s->timeout;
        s->arena = s->token = NULL;
        Py_XINCREF(timeout);
        s->timeout = timeout;
        s->state = FRESH;
        Py_INCREF(s); /* before dropping anything: what that runs cannot reuse it again */
        Py_XDECREF(arena);
        Py_XDECREF(token);
        Py_XDECREF(old_timeout);
        return (PyObject *)s;
    }
    s = scope_make(f->aop, timeout);
    if (s == NULL) {
        return NULL;
    }
    if (revive) {
        Py_INCREF(s);
        Py_XSETREF(f->last, s);
    }
    return (PyObject *)s;
}

static PyObject *
factory_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *aop;
    if (!configured()) {
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:ScopeFactory", &aop)) {
        return NULL;
    }
    Factory *f = PyObject_GC_New(Factory, type);
    if (f == NULL) {
        return NULL;
    }
    f->vectorcall = factory_vectorcall;
    Py_INCREF(aop);
    f->aop = aop;
    f->last = NULL;
    PyObject_GC_Track(f);
    return (PyObject *)f;
}

static int
factory_traverse(Factory *f, visitproc visit, void *arg)
{
    Py_VISIT(f->aop);
    Py_VISIT(f->last);
    return 0;
}

static int
factory_clear(Factory *f)
{
    Py_CLEAR(f->aop);
    Py_CLEAR(f->last);
    return 0;
}

static void
factory_dealloc(Factory *f)
{
    PyObject_GC_UnTrack(f);
    factory_clear(f);
    PyObject_GC_Del(f);
}

static PyTypeObject FactoryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "electron._scope.ScopeFactory",
    .tp_doc = "Makes the scopes a pool's arena() returns, reusing the last one when it can.",
    .tp_basicsize = sizeof(Factory),
    .tp_dealloc = (destructor)factory_dealloc,
    .tp_vectorcall_offset = offsetof(Factory, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_traverse = (traverseproc)factory_traverse,
    .tp_clear = (inquiry)factory_clear,
    .tp_new = factory_new,
};

/* ---- module ------------------------------------------------------------------------------ */

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"var", "lend_nowait", "get_arena", "return_from_scope",
                             "done", "check_timeout", "revive", NULL};
    PyObject *var, *lend, *get, *ret, *dn, *check;
    int rev;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOOp:configure", kwlist, &var, &lend,
                                     &get, &ret, &dn, &check, &rev)) {
        return NULL;
    }
    /* Set again (a reloaded electron._scope): the old objects may still be in use. */
    Py_INCREF(lend);
    Py_XSETREF(lend_nowait, lend);
    Py_INCREF(get);
    Py_XSETREF(get_arena, get);
    Py_INCREF(ret);
    Py_XSETREF(return_from_scope, ret);
    Py_INCREF(dn);
    Py_XSETREF(done, dn);
    Py_INCREF(check);
    Py_XSETREF(check_timeout, check);
    revive = rev;
    Py_INCREF(var);
    Py_XSETREF(current_arena_var, var); /* last: configured() reads it */
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(*, var, lend_nowait, get_arena, return_from_scope, done, check_timeout, "
     "revive): what the scope calls; electron/_scope.py calls it once."},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "electron._cscope",
    .m_doc = "ArenaScope in C for the compiled core (electron/_scope.py is the reference).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__cscope(void)
{
    if (PyType_Ready(&ReadyType) < 0 || PyType_Ready(&ItselfType) < 0
        || PyType_Ready(&FactoryType) < 0) {
        return NULL;
    }
    if (ScopeType.tp_flags & Py_TPFLAGS_READY) { /* initialised once per process */
        goto module;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    for (int leaving = 0; leaving < 2; leaving++) {
        Itself *it = PyObject_New(Itself, &ItselfType);
        if (it == NULL) {
            Py_DECREF(dict);
            return NULL;
        }
        it->leaving = leaving;
        int err = PyDict_SetItemString(dict, leaving ? "__aexit__" : "__aenter__", (PyObject *)it);
        Py_DECREF(it);
        if (err < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    ScopeType.tp_dict = dict; /* PyType_Ready keeps it and adds the rest */
    if (PyType_Ready(&ScopeType) < 0) {
        return NULL;
    }
module:;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "ArenaScope", (PyObject *)&ScopeType) < 0
        || PyModule_AddObjectRef(m, "ScopeFactory", (PyObject *)&FactoryType) < 0
        || PyModule_AddObjectRef(m, "Ready", (PyObject *)&ReadyType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
