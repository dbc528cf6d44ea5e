/* The accumulator's tables, compiled: the port rollup's trackers and the flow context table.
 *
 * Port rollup trackers (two generations): the rollup's per-record work in one C loop.
 *
 * Trackers(threshold, max_entries)
 *     .observe(src: bytes, dst: bytes, sport: int, dport: int) -> int     (0 keep, 1 src "*", 2 dst "*")
 *     .observe_columns(src, dst, sport, dport, n) -> bytes               (n verdicts, in record order)
 *     .rotate(); .entries(gen) -> int; .trackers(gen) -> dict; .refused (read/write)
 *
 * The algorithm is the spec's (datadog-netflow.md section 4), exactly as flowpipe.aggregate.rollup.PyTrackers
 * states it in Python (the reference and the fallback when this module is not built; tests hold the two
 * to the same verdicts, trackers and refusals): Add on the current generation, Classify on it, Add on the
 * new one without re-tracking the side called ephemeral.
 *
 * Layout of a generation (memory: a conversation seen once, the common case, costs ~30 bytes here):
 *   - pairs: an open-addressing table of address pairs (with each key's hash); an IPv4 pair's two
 *     addresses are held in its record, other pairs' keys (two lengths, then the two addresses) in an
 *     append-only arena, freed at rotation;
 *   - a pair observed once is a *seed* (its two trackers S(sport) = {dport} and D(dport) = {sport}, held
 *     as two ports in the pair record); the first change to it makes the two trackers real;
 *   - trackers: an open-addressing table keyed by (pair, S|D, port) holding the distinct peer ports in the
 *     order seen (one inline, more in a heap array), linear probing with backward-shift deletion.
 *
 * Memory: the hash tables of both kinds are probed at random; past 2 MiB they are mmap'd with
 * MADV_HUGEPAGE (and the big arrays grown with realloc are advised so), since on 4 KiB pages nearly
 * every probe into tens of MB also misses the TLB: the rollup load's trackers took 545 -> 340 ns a
 * record with it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_MIN (2u << 20)  /* tables this big take transparent huge pages where the kernel has them */

/* A zeroed table of n * size bytes: from mmap, asking for huge pages, when it is big (random probes
 * into tens of MB miss the TLB on 4 KiB pages), else calloc. Freed with table_free(p, n * size). */
static void *table_alloc(size_t n, size_t size) {
    size_t bytes = n * size;
    if (bytes < HUGE_MIN)
        return calloc(n, size);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

/* Asks for huge pages under a big array grown with realloc (what the kernel can give: whole 2 MiB
 * pages inside it). Only a hint: nothing fails without them. */
static void hint_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_MIN) {
        uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
        if (e > a)
            madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
#endif
}

static void table_free(void *p, size_t bytes) {
    if (!p)
        return;
    if (bytes < HUGE_MIN)
        free(p);
    else
        munmap(p, bytes);
}

#define KIND_S 0
#define KIND_D 1
#define KIND_BIT 0x80000000u
#define PREFETCH 6  /* records ahead whose pair buckets observe_columns asks the cache for */

typedef struct {
    uint64_t port;   /* the tracker's own port */
    uint32_t pair;   /* pair index + 1; 0: empty slot */
    uint32_t meta;   /* KIND_BIT: a D tracker; low bits: number of ports */
    union {
        uint64_t one;      /* the port, while there is one */
        uint64_t *many;    /* more: capacity is the next power of two >= n */
    } p;
} Tracker;

typedef struct {
    uint64_t key;        /* an IPv4 pair's two addresses (inl), else the offset of the key in the arena */
    uint32_t seed;       /* sport << 16 | dport while a seed */
    uint8_t state;       /* 1: a seed, 0: trackers in the table (or none) */
    uint8_t inl;         /* key holds the addresses */
} Pair;

typedef struct {
    /* pairs */
    uint64_t *ptab;      /* hash << 32 | pair index + 1; 0: empty */
    size_t pmask;
    Pair *pairs;         /* by pair index */
    size_t npairs, pcap;
    uint8_t *arena;
    size_t alen, acap;
    /* trackers */
    Tracker *tt;
    size_t tmask, tused;
    Py_ssize_t entries;  /* trackers, seeds counting two */
} Gen;

typedef struct {
    PyObject_HEAD
    Gen g[2];            /* g[cur], g[1 - cur] */
    int cur;
    Py_ssize_t threshold, max_entries, refused;
    uint8_t *key;        /* scratch key */
    size_t keycap;
} Trackers;

/* ---- hashing */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint32_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    while (n >= 8) {  /* a multiply and a shift a word, one full mix at the end */
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        p += 8; n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        for (size_t k = 0; k < n; k++)
            w |= (uint64_t)p[k] << (8 * k);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 32;
    }
    return (uint32_t)(mix64(h) >> 32);
}

static inline size_t thash(uint32_t pair, int kind, uint64_t port) {
    return (size_t)mix64(((uint64_t)pair << 1 | (uint64_t)kind) * 0x9E3779B97F4A7C15ULL ^ port);
}

/* ---- hash indexes: uint64 entries hash << 32 | value (0: empty), linear probing, sizes powers of two */

/* The index twice as big, every entry moved to its place there; -1 (an exception set) without memory. */
static int index_double(uint64_t **tab, size_t *mask) {
    size_t n = (*mask + 1) * 2;
    uint64_t *bigger = table_alloc(n, sizeof(uint64_t));
    if (!bigger) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t j = 0; j <= *mask; j++) {
        uint64_t v = (*tab)[j];
        if (!v)
            continue;
        size_t i = (uint32_t)(v >> 32) & (n - 1);
        while (bigger[i])
            i = (i + 1) & (n - 1);
        bigger[i] = v;
    }
    table_free(*tab, (*mask + 1) * sizeof(uint64_t));
    *tab = bigger;
    *mask = n - 1;
    return 0;
}

/* Deleting at i, the entry at j (after i) whose home bucket is home moves back to i: unless its home
 * lies cyclically in (i, j] (backward-shift deletion, no tombstones). */
static inline int moves_back(size_t i, size_t j, size_t home) {
    return (j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j));
}

/* ---- a generation */

static void gen_free(Gen *g) {
    if (g->tt) {
        for (size_t i = 0; i <= g->tmask; i++) {
            Tracker *t = &g->tt[i];
            if (t->pair && (t->meta & ~KIND_BIT) > 1)
                free(t->p.many);
        }
    }
    table_free(g->tt, g->tt ? (g->tmask + 1) * sizeof(Tracker) : 0);
    table_free(g->ptab, g->ptab ? (g->pmask + 1) * sizeof(uint64_t) : 0);
    free(g->pairs); free(g->arena);
    memset(g, 0, sizeof(*g));
}

static int gen_init(Gen *g) {
    memset(g, 0, sizeof(*g));
    g->pmask = 1023;
    g->ptab = table_alloc(g->pmask + 1, sizeof(uint64_t));
    g->tmask = 1023;
    g->tt = table_alloc(g->tmask + 1, sizeof(Tracker));
    if (!g->ptab || !g->tt) {
        gen_free(g);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static inline int is_v4_pair(const uint8_t *key, size_t klen) {
    return klen == 12 && key[0] == 4 && key[1] == 0 && key[2] == 4 && key[3] == 0;
}

static inline int pair_eq(const Gen *g, uint32_t idx, const uint8_t *key, size_t klen) {
    const Pair *pr = &g->pairs[idx];
    if (pr->inl) {
        uint64_t w;
        if (!is_v4_pair(key, klen))
            return 0;
        memcpy(&w, key + 4, 8);
        return w == pr->key;
    }
    const uint8_t *k = g->arena + pr->key;
    size_t ls = (size_t)k[0] | (size_t)k[1] << 8, ld = (size_t)k[2] | (size_t)k[3] << 8;
    return 4 + ls + ld == klen && memcmp(k, key, klen) == 0;
}

/* The pair's index, or -1. */
static long find_pair(const Gen *g, const uint8_t *key, size_t klen, uint32_t h) {
    size_t i = h & g->pmask;
    for (;;) {
        uint64_t v = g->ptab[i];
        if (!v)
            return -1;
        uint32_t p = (uint32_t)v - 1;
        if ((uint32_t)(v >> 32) == h && pair_eq(g, p, key, klen))
            return (long)p;
        i = (i + 1) & g->pmask;
    }
}


static void *grow_array(void *a, size_t n, size_t size) {
    void *b = realloc(a, n * size);
    if (!b)
        PyErr_NoMemory();
    else
        hint_huge(b, n * size);
    return b;
}

/* A new pair (absent), index returned, or -1 with an exception set. */
static long add_pair(Gen *g, const uint8_t *key, size_t klen, uint32_t h) {
    if ((g->npairs + 1) * 10 > (g->pmask + 1) * 7 && index_double(&g->ptab, &g->pmask) < 0)
        return -1;
    if (g->npairs == g->pcap) {
        size_t n = g->pcap ? g->pcap * 2 : 1024;
        if (n > 0xFFFFFFF0u) {
            PyErr_SetString(PyExc_MemoryError, "too many rollup pairs");
            return -1;
        }
        Pair *a = grow_array(g->pairs, n, sizeof(Pair));
        if (!a) return -1;
        g->pairs = a;
        g->pcap = n;
    }
    if (!is_v4_pair(key, klen) && g->alen + klen > g->acap) {
        size_t n = g->acap ? g->acap : 4096;
        while (n < g->alen + klen)
            n *= 2;
        if (n > 0xFFFFFFFFu) {
            PyErr_SetString(PyExc_MemoryError, "rollup pair keys past 4 GiB");
            return -1;
        }
        uint8_t *a = grow_array(g->arena, n, 1);
        if (!a) return -1;
        g->arena = a;
        g->acap = n;
    }
    size_t p = g->npairs++;
    Pair *pr = &g->pairs[p];
    pr->seed = 0;
    pr->state = 0;
    pr->inl = is_v4_pair(key, klen);
    if (pr->inl) {
        memcpy(&pr->key, key + 4, 8);
    } else {
        memcpy(g->arena + g->alen, key, klen);
        pr->key = g->alen;
        g->alen += klen;
    }
    size_t i = h & g->pmask;
    while (g->ptab[i])
        i = (i + 1) & g->pmask;
    g->ptab[i] = (uint64_t)h << 32 | (uint64_t)(p + 1);
    return (long)p;
}

static Tracker *find_tracker(const Gen *g, uint32_t pair1, int kind, uint64_t port) {
    size_t i = thash(pair1, kind, port) & g->tmask;
    uint32_t meta_kind = kind ? KIND_BIT : 0;
    for (;;) {
        Tracker *t = &g->tt[i];
        if (!t->pair)
            return NULL;
        if (t->pair == pair1 && t->port == port && (t->meta & KIND_BIT) == meta_kind)
            return t;
        i = (i + 1) & g->tmask;
    }
}

static int grow_trackers(Gen *g) {
    size_t n = (g->tmask + 1) * 2;
    Tracker *tab = table_alloc(n, sizeof(Tracker));
    if (!tab) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t j = 0; j <= g->tmask; j++) {
        Tracker *t = &g->tt[j];
        if (!t->pair)
            continue;
        size_t i = thash(t->pair, (t->meta & KIND_BIT) != 0, t->port) & (n - 1);
        while (tab[i].pair)
            i = (i + 1) & (n - 1);
        tab[i] = *t;
    }
    table_free(g->tt, (g->tmask + 1) * sizeof(Tracker));
    g->tt = tab;
    g->tmask = n - 1;
    return 0;
}

/* A new tracker (absent) holding one port; NULL with an exception set. */
static Tracker *add_tracker(Gen *g, uint32_t pair1, int kind, uint64_t port, uint64_t first) {
    if ((g->tused + 1) * 10 > (g->tmask + 1) * 7 && grow_trackers(g) < 0)
        return NULL;
    size_t i = thash(pair1, kind, port) & g->tmask;
    while (g->tt[i].pair)
        i = (i + 1) & g->tmask;
    Tracker *t = &g->tt[i];
    t->pair = pair1;
    t->port = port;
    t->meta = (kind ? KIND_BIT : 0) | 1u;
    t->p.one = first;
    g->tused++;
    return t;
}

static void del_tracker(Gen *g, Tracker *t) {
    if ((t->meta & ~KIND_BIT) > 1)
        free(t->p.many);
    size_t i = (size_t)(t - g->tt), j = i;
    for (;;) {  /* backward shift: no tombstones */
        j = (j + 1) & g->tmask;
        Tracker *u = &g->tt[j];
        if (!u->pair)
            break;
        if (moves_back(i, j, thash(u->pair, (u->meta & KIND_BIT) != 0, u->port) & g->tmask)) {
            g->tt[i] = *u;
            i = j;
        }
    }
    memset(&g->tt[i], 0, sizeof(Tracker));
    g->tused--;
}

static inline uint32_t t_len(const Tracker *t) { return t->meta & ~KIND_BIT; }
static inline const uint64_t *t_ports(const Tracker *t) { return t_len(t) > 1 ? t->p.many : &t->p.one; }

static int t_has(const Tracker *t, uint64_t port) {
    const uint64_t *ps = t_ports(t);
    for (uint32_t k = 0, n = t_len(t); k < n; k++)
        if (ps[k] == port)
            return 1;
    return 0;
}

static int t_append(Tracker *t, uint64_t port) {
    uint32_t n = t_len(t);
    if (n == 1) {
        uint64_t *a = malloc(2 * sizeof(uint64_t));
        if (!a) {
            PyErr_NoMemory();
            return -1;
        }
        a[0] = t->p.one;
        t->p.many = a;
    } else if ((n & (n - 1)) == 0) {  /* full at a power of two */
        uint64_t *a = realloc(t->p.many, 2 * (size_t)n * sizeof(uint64_t));
        if (!a) {
            PyErr_NoMemory();
            return -1;
        }
        t->p.many = a;
    }
    t->p.many[n] = port;
    t->meta++;
    return 0;
}

/* A seed's two trackers made real. */
static int materialize(Gen *g, long pair) {
    if (!g->pairs[pair].state)
        return 0;
    uint32_t s = g->pairs[pair].seed;
    uint64_t sp = s >> 16, dp = s & 0xFFFF;
    /* room for both first: once the table has it, adding them cannot fail (the seed stays on failure) */
    while ((g->tused + 2) * 10 > (g->tmask + 1) * 7)
        if (grow_trackers(g) < 0)
            return -1;
    g->pairs[pair].state = 0;
    if (!add_tracker(g, (uint32_t)pair + 1, KIND_S, sp, dp) || !add_tracker(g, (uint32_t)pair + 1, KIND_D, dp, sp))
        return -1;
    return 0;
}

/* How many ports the pair's tracker (kind, port) holds in g (0: none). */
static uint32_t count(const Gen *g, long pair, int kind, uint64_t port) {
    if (pair < 0)
        return 0;
    if (g->pairs[pair].state) {
        uint32_t s = g->pairs[pair].seed;
        return (kind == KIND_S ? (s >> 16) : (s & 0xFFFF)) == port;
    }
    const Tracker *t = find_tracker(g, (uint32_t)pair + 1, kind, port);
    return t ? t_len(t) : 0;
}

/* The pair's trackers (kind, port) in g, their number of ports in *n (0: none); NULL for a seed's. */
static Tracker *lookup(const Gen *g, long pair, int kind, uint64_t port, uint32_t *n) {
    if (g->pairs[pair].state) {
        *n = count(g, pair, kind, port);
        return NULL;
    }
    Tracker *t = find_tracker(g, (uint32_t)pair + 1, kind, port);
    *n = t ? t_len(t) : 0;
    return t;
}

/* The spec's Add of one flow on generation g; -1 on error (an exception set). Leaves in *s and *d the
 * ports the flow's S and D trackers hold afterwards (what Classify reads). Each lookup is made once
 * and again only after a change that may have moved the tables. */
static int add(Trackers *r, Gen *g, const uint8_t *key, size_t klen, uint32_t h, uint64_t sp, uint64_t dp,
               int src_eph, int dst_eph, uint32_t *s, uint32_t *d) {
    Py_ssize_t t = r->threshold;
    long pair = find_pair(g, key, klen, h);
    uint32_t a = 0, b = 0;
    Tracker *ts = NULL, *td = NULL;
    if (pair >= 0) {
        ts = lookup(g, pair, KIND_S, sp, &a);
        td = lookup(g, pair, KIND_D, dp, &b);
    }
    *s = a;
    *d = b;
    if ((Py_ssize_t)a >= t || (Py_ssize_t)b >= t)
        return 0;
    int s_tried = (Py_ssize_t)b + 1 < t && !src_eph, d_tried = (Py_ssize_t)a + 1 < t && !dst_eph;
    if (!s_tried && !d_tried)
        return 0;
    Py_ssize_t total = r->g[0].entries + r->g[1].entries;
    if (pair < 0 && s_tried && d_tried && total + 2 <= r->max_entries && sp <= 0xFFFF && dp <= 0xFFFF) {
        /* the common case: a new pair, its two trackers one seed */
        if ((pair = add_pair(g, key, klen, h)) < 0)
            return -1;
        g->pairs[pair].seed = (uint32_t)(sp << 16 | dp);
        g->pairs[pair].state = 1;
        g->entries += 2;
        *s = *d = 1;
        return 0;
    }
    if (pair >= 0 && g->pairs[pair].state) {
        /* a seed seeing its own observation again changes nothing (each tracker holds its port) */
        uint32_t seed = g->pairs[pair].seed;
        if ((seed >> 16) == sp && (seed & 0xFFFF) == dp)
            return 0;
        if (materialize(g, pair) < 0)
            return -1;
        ts = a ? find_tracker(g, (uint32_t)pair + 1, KIND_S, sp) : NULL;
        td = b ? find_tracker(g, (uint32_t)pair + 1, KIND_D, dp) : NULL;
    }
    int moved = 0;  /* the tables changed: pointers into them are stale */
    for (int side = 0; side < 2; side++) {
        int kind = side == 0 ? KIND_S : KIND_D;
        if (!(side == 0 ? s_tried : d_tried))
            continue;
        uint64_t own = side == 0 ? sp : dp, peer = side == 0 ? dp : sp;
        Tracker *tr = side == 0 ? ts : (moved && pair >= 0 ? find_tracker(g, (uint32_t)pair + 1, kind, own) : td);
        if (!tr) {
            if (r->g[0].entries + r->g[1].entries >= r->max_entries) {
                r->refused++;
                break;  /* a refused tracker ends this Add (spec) */
            }
            if (pair < 0 && (pair = add_pair(g, key, klen, h)) < 0)
                return -1;
            if (!(tr = add_tracker(g, (uint32_t)pair + 1, kind, own, peer)))
                return -1;
            g->entries++;
            moved = 1;
        } else if (!t_has(tr, peer)) {
            if (t_append(tr, peer) < 0)
                return -1;
        }
        if (side == 0)
            *s = t_len(tr);
        else
            *d = t_len(tr);
        if ((Py_ssize_t)t_len(tr) >= t) {
            /* this side's peer ports are ephemeral: the peer side's trackers of those ports go */
            uint32_t n = t_len(tr);
            uint64_t *ports = malloc(n * sizeof(uint64_t));
            if (!ports) {
                PyErr_NoMemory();
                return -1;
            }
            memcpy(ports, t_ports(tr), n * sizeof(uint64_t));
            int other = kind == KIND_S ? KIND_D : KIND_S;
            for (uint32_t k = 0; k < n; k++) {
                Tracker *u = find_tracker(g, (uint32_t)pair + 1, other, ports[k]);
                if (u) {
                    del_tracker(g, u);
                    g->entries--;
                    moved = 1;
                    if (other == KIND_D && ports[k] == dp)
                        *d = 0;
                    else if (other == KIND_S && ports[k] == sp)
                        *s = 0;
                }
            }
            free(ports);
        }
    }
    return 0;
}

static inline int verdict(Py_ssize_t s, Py_ssize_t d, Py_ssize_t t) {
    if (s < t && d < t)
        return 0;
    return d > s ? 1 : 2;
}

/* Observe one flow whose pair key is key[0:klen]; the verdict, or -1 with an exception set. */
static int observe_key(Trackers *r, const uint8_t *key, size_t klen, uint32_t h, uint64_t sp, uint64_t dp) {
    Gen *cur = &r->g[r->cur], *nw = &r->g[1 - r->cur];
    uint32_t s, d, s2, d2;
    if (add(r, cur, key, klen, h, sp, dp, 0, 0, &s, &d) < 0)
        return -1;
    int v = verdict(s, d, r->threshold);  /* Classify on the current generation, as Add left it */
    if (add(r, nw, key, klen, h, sp, dp, v == 1, v == 2, &s2, &d2) < 0)
        return -1;
    return v;
}

static uint8_t *scratch(Trackers *r, size_t n) {
    if (n > r->keycap) {
        uint8_t *k = realloc(r->key, n);
        if (!k) {
            PyErr_NoMemory();
            return NULL;
        }
        r->key = k;
        r->keycap = n;
    }
    return r->key;
}

static size_t make_key(uint8_t *k, const uint8_t *src, size_t ls, const uint8_t *dst, size_t ld) {
    k[0] = (uint8_t)ls; k[1] = (uint8_t)(ls >> 8); k[2] = (uint8_t)ld; k[3] = (uint8_t)(ld >> 8);
    if (ls) memcpy(k + 4, src, ls);
    if (ld) memcpy(k + 4 + ls, dst, ld);
    return 4 + ls + ld;
}

/* ---- the Python type */

static PyObject *Trackers_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"threshold", "max_entries", NULL};
    Py_ssize_t threshold, max_entries = 2000000;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "n|n", names, &threshold, &max_entries))
        return NULL;
    Trackers *r = (Trackers *)type->tp_alloc(type, 0);
    if (!r)
        return NULL;
    r->threshold = threshold;
    r->max_entries = max_entries;
    if (gen_init(&r->g[0]) < 0 || gen_init(&r->g[1]) < 0 || !scratch(r, 64)) {
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

static void Trackers_dealloc(Trackers *r) {
    gen_free(&r->g[0]);
    gen_free(&r->g[1]);
    free(r->key);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static int get_port(PyObject *o, uint64_t *out) {
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* The arguments (src, dst, sport, dport) of observe and classify: the pair's key in the scratch buffer
 * (*key, *klen) and the ports. 0, or 1 when an address is longer than a key holds (65535 bytes), or -1
 * with an exception set. */
static int flow_args(Trackers *r, PyObject *const *args, Py_ssize_t nargs, const char *usage, uint8_t **key,
                     size_t *klen, uint64_t *sp, uint64_t *dp) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    char *src, *dst;
    Py_ssize_t ls, ld;
    if (PyBytes_AsStringAndSize(args[0], &src, &ls) < 0 || PyBytes_AsStringAndSize(args[1], &dst, &ld) < 0 ||
        get_port(args[2], sp) < 0 || get_port(args[3], dp) < 0)
        return -1;
    if (ls > 0xFFFF || ld > 0xFFFF)
        return 1;
    if (!(*key = scratch(r, 4 + (size_t)ls + (size_t)ld)))
        return -1;
    *klen = make_key(*key, (uint8_t *)src, (size_t)ls, (uint8_t *)dst, (size_t)ld);
    return 0;
}

static PyObject *Trackers_observe(Trackers *r, PyObject *const *args, Py_ssize_t nargs) {
    uint8_t *k;
    size_t klen;
    uint64_t sp, dp;
    int got = flow_args(r, args, nargs, "observe(src, dst, sport, dport)", &k, &klen, &sp, &dp);
    if (got < 0)
        return NULL;
    if (got) {
        PyErr_SetString(PyExc_ValueError, "address longer than 65535 bytes");
        return NULL;
    }
    int v = observe_key(r, k, klen, hash_bytes(k, klen), sp, dp);
    return v < 0 ? NULL : PyLong_FromLong(v);
}

static PyObject *Trackers_classify(Trackers *r, PyObject *const *args, Py_ssize_t nargs) {
    uint8_t *k;
    size_t klen;
    uint64_t sp, dp;
    int got = flow_args(r, args, nargs, "classify(src, dst, sport, dport)", &k, &klen, &sp, &dp);
    if (got < 0)
        return NULL;
    if (got)
        return PyLong_FromLong(0);  /* never tracked */
    Gen *cur = &r->g[r->cur];
    long pair = find_pair(cur, k, klen, hash_bytes(k, klen));
    return PyLong_FromLong(verdict(count(cur, pair, KIND_S, sp), count(cur, pair, KIND_D, dp), r->threshold));
}

/* observe_columns(src, dst, sport, dport, n): src/dst contiguous buffers of n addresses of one width
 * each (None: absent, b""), ports contiguous uint64 buffers (None: 0). */
static PyObject *Trackers_observe_columns(Trackers *r, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "observe_columns(src, dst, sport, dport, n)");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[4]);
    if (n < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "n < 0");
        return NULL;
    }
    Py_buffer b[4];
    int got[4] = {0, 0, 0, 0};
    PyObject *out = NULL;
    size_t width[2] = {0, 0};
    for (int k = 0; k < 4; k++) {
        if (args[k] == Py_None)
            continue;
        if (PyObject_GetBuffer(args[k], &b[k], PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        got[k] = 1;
        if (k < 2) {
            if (n == 0 || b[k].len % n) {
                if (n == 0 && b[k].len == 0)
                    continue;
                PyErr_SetString(PyExc_ValueError, "address column not n addresses of one width");
                goto done;
            }
            width[k] = (size_t)(b[k].len / n);
            if (width[k] > 0xFFFF) {
                PyErr_SetString(PyExc_ValueError, "address longer than 65535 bytes");
                goto done;
            }
        } else if (b[k].len != n * 8) {
            PyErr_SetString(PyExc_ValueError, "port column not n uint64");
            goto done;
        }
    }
    out = PyBytes_FromStringAndSize(NULL, n);
    if (!out)
        goto done;
    uint8_t *v = (uint8_t *)PyBytes_AS_STRING(out);
    uint8_t *key = scratch(r, 4 + width[0] + width[1]);
    if (!key) {
        Py_CLEAR(out);
        goto done;
    }
    const uint8_t *src = got[0] ? b[0].buf : NULL, *dst = got[1] ? b[1].buf : NULL;
    const uint64_t *sps = got[2] ? b[2].buf : NULL, *dps = got[3] ? b[3].buf : NULL;
    uint32_t ring[8];  /* hashes of the records i .. i + PREFETCH (PREFETCH < 8) */
    Py_ssize_t ahead = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* the hash of a record a few ahead, kept for its turn, and its pair buckets asked of the cache */
        for (; ahead < n && ahead <= i + PREFETCH; ahead++) {
            size_t kl = make_key(key, src ? src + ahead * width[0] : NULL, width[0],
                                 dst ? dst + ahead * width[1] : NULL, width[1]);
            uint32_t h = ring[ahead & 7] = hash_bytes(key, kl);
            __builtin_prefetch(&r->g[0].ptab[h & r->g[0].pmask]);
            __builtin_prefetch(&r->g[1].ptab[h & r->g[1].pmask]);
        }
        size_t klen = make_key(key, src ? src + i * width[0] : NULL, width[0], dst ? dst + i * width[1] : NULL,
                               width[1]);
        int x = observe_key(r, key, klen, ring[i & 7], sps ? sps[i] : 0, dps ? dps[i] : 0);
        if (x < 0) {
            Py_CLEAR(out);
            goto done;
        }
        v[i] = (uint8_t)x;
    }
done:
    for (int k = 0; k < 4; k++)
        if (got[k])
            PyBuffer_Release(&b[k]);
    return out;
}

static PyObject *Trackers_rotate(Trackers *r, PyObject *unused) {
    Gen fresh;  /* made first: on failure nothing changes (a MemoryError, never a half-freed table) */
    if (gen_init(&fresh) < 0)
        return NULL;
    Gen *old = &r->g[r->cur];
    gen_free(old);
    *old = fresh;
    r->cur = 1 - r->cur;  /* the new generation becomes the current one; the freed one is the new */
    Py_RETURN_NONE;
}

static Gen *gen_arg(Trackers *r, PyObject *arg) {
    long which = PyLong_AsLong(arg);
    if (which == -1 && PyErr_Occurred())
        return NULL;
    if (which != 0 && which != 1) {
        PyErr_SetString(PyExc_ValueError, "generation is 0 (current) or 1 (new)");
        return NULL;
    }
    return &r->g[which == 0 ? r->cur : 1 - r->cur];
}

static PyObject *Trackers_entries(Trackers *r, PyObject *arg) {
    Gen *g = gen_arg(r, arg);
    return g ? PyLong_FromSsize_t(g->entries) : NULL;
}

static int put_tracker(PyObject *d, const Gen *g, uint32_t pair, int kind, uint64_t port, const uint64_t *ports,
                       uint32_t n) {
    uint8_t inl[12] = {4, 0, 4, 0};
    const uint8_t *k = inl;
    if (g->pairs[pair].inl)
        memcpy(inl + 4, &g->pairs[pair].key, 8);
    else
        k = g->arena + g->pairs[pair].key;
    size_t ls = (size_t)k[0] | (size_t)k[1] << 8, ld = (size_t)k[2] | (size_t)k[3] << 8;
    PyObject *ps = PyTuple_New(n), *key = NULL;
    if (!ps)
        return -1;
    for (uint32_t j = 0; j < n; j++) {
        PyObject *x = PyLong_FromUnsignedLongLong(ports[j]);
        if (!x) {
            Py_DECREF(ps);
            return -1;
        }
        PyTuple_SET_ITEM(ps, j, x);
    }
    key = Py_BuildValue("(y#y#iK)", (const char *)k + 4, (Py_ssize_t)ls, (const char *)k + 4 + ls,
                        (Py_ssize_t)ld, kind, (unsigned long long)port);
    int rc = key ? PyDict_SetItem(d, key, ps) : -1;
    Py_XDECREF(key);
    Py_DECREF(ps);
    return rc;
}

/* trackers(gen) -> {(src, dst, 0 S | 1 D, port): (ports in the order seen)} */
static PyObject *Trackers_trackers(Trackers *r, PyObject *arg) {
    Gen *g = gen_arg(r, arg);
    if (!g)
        return NULL;
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    for (size_t p = 0; p < g->npairs; p++) {
        if (!g->pairs[p].state)
            continue;
        uint64_t sp = g->pairs[p].seed >> 16, dp = g->pairs[p].seed & 0xFFFF;
        if (put_tracker(d, g, (uint32_t)p, KIND_S, sp, &dp, 1) < 0 ||
            put_tracker(d, g, (uint32_t)p, KIND_D, dp, &sp, 1) < 0)
            goto fail;
    }
    for (size_t i = 0; i <= g->tmask; i++) {
        const Tracker *t = &g->tt[i];
        if (t->pair && put_tracker(d, g, t->pair - 1, (t->meta & KIND_BIT) ? KIND_D : KIND_S, t->port, t_ports(t),
                                   t_len(t)) < 0)
            goto fail;
    }
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *Trackers_memory(Trackers *r, PyObject *unused) {
    size_t total = sizeof(Trackers) + r->keycap;
    for (int k = 0; k < 2; k++) {
        const Gen *g = &r->g[k];
        total += (g->pmask + 1) * 8 + g->pcap * sizeof(Pair) + g->acap + (g->tmask + 1) * sizeof(Tracker);
        for (size_t i = 0; i <= g->tmask; i++) {
            uint32_t n = g->tt[i].pair ? t_len(&g->tt[i]) : 0;
            if (n > 1) {
                size_t cap = 2;
                while (cap < n) cap *= 2;
                total += cap * 8;
            }
        }
    }
    return PyLong_FromSize_t(total);
}

static PyMethodDef Trackers_methods[] = {
    {"observe", (PyCFunction)(void (*)(void))Trackers_observe, METH_FASTCALL,
     "observe(src, dst, sport, dport) -> verdict: track one flow's ports and classify it"},
    {"observe_columns", (PyCFunction)(void (*)(void))Trackers_observe_columns, METH_FASTCALL,
     "observe_columns(src, dst, sport, dport, n) -> bytes: observe n flows in order, their verdicts"},
    {"classify", (PyCFunction)(void (*)(void))Trackers_classify, METH_FASTCALL,
     "classify(src, dst, sport, dport) -> verdict on the current generation, tracking nothing"},
    {"rotate", (PyCFunction)Trackers_rotate, METH_NOARGS, "the new generation becomes the current one"},
    {"entries", (PyCFunction)Trackers_entries, METH_O, "entries(gen) -> trackers held (0 current, 1 new)"},
    {"trackers", (PyCFunction)Trackers_trackers, METH_O, "trackers(gen) -> {(src, dst, kind, port): ports}"},
    {"memory", (PyCFunction)Trackers_memory, METH_NOARGS, "bytes held by the tables"},
    {NULL, NULL, 0, NULL},
};

static PyObject *get_refused(Trackers *r, void *c) { return PyLong_FromSsize_t(r->refused); }
static int set_refused(Trackers *r, PyObject *v, void *c) {
    Py_ssize_t x = v ? PyLong_AsSsize_t(v) : -1;
    if (x == -1 && (!v || PyErr_Occurred())) {
        if (!v)
            PyErr_SetString(PyExc_TypeError, "cannot delete refused");
        return -1;
    }
    r->refused = x;
    return 0;
}
static PyObject *get_threshold(Trackers *r, void *c) { return PyLong_FromSsize_t(r->threshold); }
static PyObject *get_max_entries(Trackers *r, void *c) { return PyLong_FromSsize_t(r->max_entries); }

static PyGetSetDef Trackers_getset[] = {
    {"refused", (getter)get_refused, (setter)set_refused, "trackers not made because the tables were full", NULL},
    {"threshold", (getter)get_threshold, NULL, "distinct peer ports that make a side ephemeral", NULL},
    {"max_entries", (getter)get_max_entries, NULL, "trackers both generations may hold together", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TrackersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "flowpipe.aggregate._tables.Trackers",
    .tp_basicsize = sizeof(Trackers),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Port rollup trackers, two generations (see flowpipe.aggregate.rollup)",
    .tp_new = Trackers_new,
    .tp_dealloc = (destructor)Trackers_dealloc,
    .tp_methods = Trackers_methods,
    .tp_getset = Trackers_getset,
};

/* ==== the context table ==================================================================== */

/* A context's key (bytes, see flowpipe.aggregate.keys) held in its slot: up to INLINE bytes in place,
 * longer ones (IPv6) in a heap copy. */
#define INLINE 28
typedef struct {
    uint32_t len;
    union {
        uint8_t b[INLINE];
        uint8_t *p;
    } k;
} SlotKey;

typedef struct {
    PyObject_HEAD
    uint64_t *index;          /* hash << 32 | slot + 1; 0: empty */
    size_t imask;
    Py_ssize_t n;             /* contexts held */
    SlotKey *keys;            /* by slot */
    int32_t *prev, *next;     /* the order contexts were made in (-1: none) */
    int32_t head, tail;
    int32_t *free;            /* slots given back, reused last first */
    size_t nfree;
    size_t cap;               /* slots the arrays have room for */
    size_t high;              /* slots handed out so far (the columns' length must cover it) */
} ContextTable;

static inline const uint8_t *skey(const SlotKey *k) { return k->len <= INLINE ? k->k.b : k->k.p; }

/* The slot holding key, or -1; *at: where it is in the index (or the empty bucket it would take). */
static long ct_find(const ContextTable *t, const uint8_t *key, size_t len, uint32_t h, size_t *at) {
    size_t i = h & t->imask;
    for (;;) {
        uint64_t v = t->index[i];
        if (!v) {
            *at = i;
            return -1;
        }
        if ((uint32_t)(v >> 32) == h) {
            uint32_t s = (uint32_t)v - 1;
            const SlotKey *k = &t->keys[s];
            if (k->len == len && memcmp(skey(k), key, len) == 0) {
                *at = i;
                return (long)s;
            }
        }
        i = (i + 1) & t->imask;
    }
}

static int ct_grow_slots(ContextTable *t) {
    size_t n = t->cap ? t->cap + (t->cap >> 1) : 1024;
    if (n > 0x7FFFFFF0u) {
        PyErr_SetString(PyExc_MemoryError, "too many contexts");
        return -1;
    }
    SlotKey *k = realloc(t->keys, n * sizeof(SlotKey));
    if (!k) goto nomem;
    hint_huge(k, n * sizeof(SlotKey));
    t->keys = k;
    int32_t *a = realloc(t->prev, n * sizeof(int32_t));
    if (!a) goto nomem;
    t->prev = a;
    if (!(a = realloc(t->next, n * sizeof(int32_t)))) goto nomem;
    t->next = a;
    if (!(a = realloc(t->free, n * sizeof(int32_t)))) goto nomem;
    t->free = a;
    t->cap = n;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

/* A new context for key (absent; *at from ct_find), at the end of the order: its slot, or -1. */
static long ct_insert(ContextTable *t, const uint8_t *key, size_t len, uint32_t h, size_t at) {
    if ((size_t)(t->n + 1) * 10 > (t->imask + 1) * 7) {
        if (index_double(&t->index, &t->imask) < 0)
            return -1;
        ct_find(t, key, len, h, &at);
    }
    long s;
    if (t->nfree) {
        s = t->free[--t->nfree];
    } else {
        if (t->high == t->cap && ct_grow_slots(t) < 0)
            return -1;
        s = (long)t->high++;
    }
    SlotKey *k = &t->keys[s];
    k->len = (uint32_t)len;
    if (len <= INLINE) {
        memcpy(k->k.b, key, len);
    } else {
        uint8_t *p = malloc(len);
        if (!p) {
            t->free[t->nfree++] = (int32_t)s;
            PyErr_NoMemory();
            return -1;
        }
        memcpy(p, key, len);
        k->k.p = p;
    }
    t->index[at] = (uint64_t)h << 32 | (uint64_t)(s + 1);
    t->prev[s] = t->tail;
    t->next[s] = -1;
    if (t->tail >= 0)
        t->next[t->tail] = (int32_t)s;
    else
        t->head = (int32_t)s;
    t->tail = (int32_t)s;
    t->n++;
    return s;
}

static void ct_remove(ContextTable *t, long s) {
    SlotKey *k = &t->keys[s];
    size_t at;
    const uint8_t *key = skey(k);
    if (ct_find(t, key, k->len, hash_bytes(key, k->len), &at) != s)
        return;  /* not held */
    size_t i = at, j = at;
    for (;;) {  /* backward shift: no tombstones */
        j = (j + 1) & t->imask;
        uint64_t v = t->index[j];
        if (!v)
            break;
        if (moves_back(i, j, (uint32_t)(v >> 32) & t->imask)) {
            t->index[i] = v;
            i = j;
        }
    }
    t->index[i] = 0;
    if (k->len > INLINE)
        free(k->k.p);
    k->len = 0;
    int32_t p = t->prev[s], n = t->next[s];
    if (p >= 0) t->next[p] = n; else t->head = n;
    if (n >= 0) t->prev[n] = p; else t->tail = p;
    t->free[t->nfree++] = (int32_t)s;
    t->n--;
}

static void ct_clear(ContextTable *t) {
    for (int32_t s = t->head; s >= 0; s = t->next[s])
        if (t->keys[s].len > INLINE)
            free(t->keys[s].k.p);
    table_free(t->index, t->index ? (t->imask + 1) * sizeof(uint64_t) : 0);
    free(t->keys); free(t->prev); free(t->next); free(t->free);
    t->index = NULL; t->keys = NULL; t->prev = t->next = t->free = NULL;
    t->imask = 0; t->n = 0; t->nfree = t->cap = t->high = 0;
    t->head = t->tail = -1;
}

static int ct_init(ContextTable *t) {
    t->head = t->tail = -1;
    t->imask = 1023;
    t->index = table_alloc(t->imask + 1, sizeof(uint64_t));
    if (!t->index) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyObject *CT_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (!PyArg_ParseTuple(args, ":ContextTable"))
        return NULL;
    ContextTable *t = (ContextTable *)type->tp_alloc(type, 0);
    if (!t)
        return NULL;
    if (ct_init(t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

static void CT_dealloc(ContextTable *t) {
    ct_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static Py_ssize_t CT_len(ContextTable *t) { return t->n; }

static PyObject *CT_get(ContextTable *t, PyObject *key) {
    char *b;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(key, &b, &len) < 0)
        return NULL;
    size_t at;
    long s = ct_find(t, (uint8_t *)b, (size_t)len, hash_bytes((uint8_t *)b, (size_t)len), &at);
    if (s < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(s);
}

static PyObject *CT_add(ContextTable *t, PyObject *key) {
    char *b;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(key, &b, &len) < 0)
        return NULL;
    uint32_t h = hash_bytes((uint8_t *)b, (size_t)len);
    size_t at;
    long s = ct_find(t, (uint8_t *)b, (size_t)len, h, &at);
    if (s < 0 && (s = ct_insert(t, (uint8_t *)b, (size_t)len, h, at)) < 0)
        return NULL;
    return PyLong_FromLong(s);
}

/* Buffers of the batch calls; a format check is left to the Python side (flowpipe.aggregate.contexts). */
static int ct_buffers(PyObject *const *args, int nb, Py_buffer *b, int writable_from) {
    for (int k = 0; k < nb; k++) {
        int flags = PyBUF_C_CONTIGUOUS | (k >= writable_from ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(args[k], &b[k], flags) < 0) {
            while (k--)
                PyBuffer_Release(&b[k]);
            return -1;
        }
    }
    return 0;
}

static void ct_release(Py_buffer *b, int nb) {
    for (int k = 0; k < nb; k++)
        PyBuffer_Release(&b[k]);
}

/* The width (args[1]) of a call of ``want`` arguments, else -1 with an exception set (``usage`` when
 * the count is wrong). */
static Py_ssize_t width_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *usage) {
    if (nargs != want) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    Py_ssize_t w = PyLong_AsSsize_t(args[1]);
    if (w <= 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "width > 0");
        return -1;
    }
    return w;
}

/* lookup(keys, width, out): out[p] = the slot of key p (keys: n keys of width bytes end to end), -1 when absent */
static PyObject *CT_lookup(ContextTable *t, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t w = width_arg(args, nargs, 3, "lookup(keys, width, out)");
    if (w < 0)
        return NULL;
    PyObject *bufs[2] = {args[0], args[2]};
    Py_buffer b[2];
    if (ct_buffers(bufs, 2, b, 1) < 0)
        return NULL;
    Py_ssize_t n = b[0].len / w;
    if (b[1].len != n * 8) {
        ct_release(b, 2);
        PyErr_SetString(PyExc_ValueError, "out: one int64 a key");
        return NULL;
    }
    const uint8_t *keys = b[0].buf;
    int64_t *out = b[1].buf;
    uint32_t ring[8];  /* hashes of the keys p .. p + 4, their buckets asked of the cache ahead */
    Py_ssize_t ahead = 0;
    for (Py_ssize_t p = 0; p < n; p++) {
        for (; ahead < n && ahead <= p + 4; ahead++) {
            uint32_t h = ring[ahead & 7] = hash_bytes(keys + ahead * w, (size_t)w);
            __builtin_prefetch(&t->index[h & t->imask]);
        }
        size_t at;
        out[p] = ct_find(t, keys + p * w, (size_t)w, ring[p & 7], &at);
    }
    ct_release(b, 2);
    Py_RETURN_NONE;
}

/* insert_many(keys, width, positions, out, opened, limit) -> made: for each position p (ascending) of a
 * key not held: made (its slot in out[p], opened[p] = 1) while fewer than limit were made, else
 * out[p] = -1; a key made earlier in the call gets its slot. */
static PyObject *CT_insert_many(ContextTable *t, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t w = width_arg(args, nargs, 6, "insert_many(keys, width, positions, out, opened, limit)");
    if (w < 0)
        return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *bufs[4] = {args[0], args[2], args[3], args[4]};
    Py_buffer b[4];
    if (ct_buffers(bufs, 4, b, 2) < 0)
        return NULL;
    Py_ssize_t n = b[0].len / w, m = b[1].len / 8, made = 0;
    if (b[2].len != n * 8 || b[3].len != n) {
        ct_release(b, 4);
        PyErr_SetString(PyExc_ValueError, "out: int64 a key, opened: a byte a key");
        return NULL;
    }
    const uint8_t *keys = b[0].buf;
    const int64_t *pos = b[1].buf;
    int64_t *out = b[2].buf;
    uint8_t *opened = b[3].buf;
    for (Py_ssize_t j = 0; j < m; j++) {
        int64_t p = pos[j];
        if (p < 0 || p >= n) {
            ct_release(b, 4);
            PyErr_SetString(PyExc_IndexError, "position out of range");
            return NULL;
        }
        const uint8_t *k = keys + p * w;
        uint32_t h = hash_bytes(k, (size_t)w);
        size_t at;
        long s = ct_find(t, k, (size_t)w, h, &at);
        if (s < 0 && made < limit) {
            if ((s = ct_insert(t, k, (size_t)w, h, at)) < 0) {
                ct_release(b, 4);
                return NULL;
            }
            made++;
            opened[p] = 1;
        }
        out[p] = s;
    }
    ct_release(b, 4);
    return PyLong_FromSsize_t(made);
}

static int ct_slots(PyObject *arg, Py_buffer *b, const ContextTable *t) {
    if (PyObject_GetBuffer(arg, b, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (b->len % 8) {
        PyBuffer_Release(b);
        PyErr_SetString(PyExc_ValueError, "slots: int64");
        return -1;
    }
    const int64_t *s = b->buf;
    for (Py_ssize_t j = 0; j < b->len / 8; j++) {
        if (s[j] < 0 || (size_t)s[j] >= t->high || !t->keys[s[j]].len) {
            PyBuffer_Release(b);
            PyErr_SetString(PyExc_KeyError, "no context in that slot");
            return -1;
        }
    }
    return 0;
}

/* remove(slots): the contexts in these slots are gone (their slots are reused) */
static PyObject *CT_remove(ContextTable *t, PyObject *arg) {
    Py_buffer b;
    if (ct_slots(arg, &b, t) < 0)
        return NULL;
    const int64_t *s = b.buf;
    for (Py_ssize_t j = 0; j < b.len / 8; j++)
        ct_remove(t, (long)s[j]);
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

/* keys(slots) -> [bytes]: the keys of the contexts in these slots */
static PyObject *CT_keys(ContextTable *t, PyObject *arg) {
    Py_buffer b;
    if (ct_slots(arg, &b, t) < 0)
        return NULL;
    const int64_t *s = b.buf;
    Py_ssize_t m = b.len / 8;
    PyObject *out = PyList_New(m);
    for (Py_ssize_t j = 0; out && j < m; j++) {
        const SlotKey *k = &t->keys[s[j]];
        PyObject *x = PyBytes_FromStringAndSize((const char *)skey(k), k->len);
        if (!x)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, j, x);
    }
    PyBuffer_Release(&b);
    return out;
}

/* keys_into(slots, width, out) -> bool: the keys of the contexts in these slots written end to end into
 * out (width bytes each), when every one is width bytes long; False (out partly written) when one is not */
static PyObject *CT_keys_into(ContextTable *t, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t w = width_arg(args, nargs, 3, "keys_into(slots, width, out)");
    if (w < 0)
        return NULL;
    Py_buffer b[2];
    if (ct_slots(args[0], &b[0], t) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &b[1], PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&b[0]);
        return NULL;
    }
    const int64_t *s = b[0].buf;
    Py_ssize_t m = b[0].len / 8;
    if (m ? (b[1].len % m || b[1].len / m != w) : b[1].len != 0) {  /* (m * w could overflow) */
        ct_release(b, 2);
        PyErr_SetString(PyExc_ValueError, "out: width bytes a slot");
        return NULL;
    }
    uint8_t *out = b[1].buf;
    int all = 1;
    for (Py_ssize_t j = 0; j < m && all; j++) {
        const SlotKey *k = &t->keys[s[j]];
        if ((Py_ssize_t)k->len != w)
            all = 0;
        else
            memcpy(out + j * w, skey(k), (size_t)w);
    }
    ct_release(b, 2);
    return PyBool_FromLong(all);
}

/* order() -> bytes: the slots of the contexts held, as int64, in the order they were made */
static PyObject *CT_order(ContextTable *t, PyObject *unused) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, t->n * 8);
    if (!out)
        return NULL;
    int64_t *o = (int64_t *)PyBytes_AS_STRING(out);
    Py_ssize_t j = 0;
    for (int32_t s = t->head; s >= 0 && j < t->n; s = t->next[s])
        o[j++] = s;
    return out;
}

static PyObject *CT_clear(ContextTable *t, PyObject *unused) {
    uint64_t *index = table_alloc(1024, sizeof(uint64_t));  /* made first: on failure the table stays as it was */
    if (!index)
        return PyErr_NoMemory();
    ct_clear(t);
    t->index = index;
    t->imask = 1023;
    Py_RETURN_NONE;
}

static PyObject *CT_memory(ContextTable *t, PyObject *unused) {
    size_t total = sizeof(ContextTable) + (t->imask + 1) * 8 + t->cap * (sizeof(SlotKey) + 12);
    for (int32_t s = t->head; s >= 0; s = t->next[s])
        if (t->keys[s].len > INLINE)
            total += t->keys[s].len;
    return PyLong_FromSize_t(total);
}

static PyObject *CT_capacity(ContextTable *t, void *c) { return PyLong_FromSize_t(t->high); }

static PyMethodDef CT_methods[] = {
    {"get", (PyCFunction)CT_get, METH_O, "get(key) -> the slot of key's context, or None"},
    {"add", (PyCFunction)CT_add, METH_O, "add(key) -> the slot of key's context, made at the end of the order if new"},
    {"lookup", (PyCFunction)(void (*)(void))CT_lookup, METH_FASTCALL,
     "lookup(keys, width, out): out[p] = the slot of key p, -1 when absent"},
    {"insert_many", (PyCFunction)(void (*)(void))CT_insert_many, METH_FASTCALL,
     "insert_many(keys, width, positions, out, opened, limit) -> contexts made"},
    {"remove", (PyCFunction)CT_remove, METH_O, "remove(slots): the contexts in these slots are gone"},
    {"keys", (PyCFunction)CT_keys, METH_O, "keys(slots) -> the keys of the contexts in these slots"},
    {"keys_into", (PyCFunction)(void (*)(void))CT_keys_into, METH_FASTCALL,
     "keys_into(slots, width, out) -> whether every key is width bytes (then written end to end into out)"},
    {"order", (PyCFunction)CT_order, METH_NOARGS, "order() -> the slots held (int64 bytes), oldest first"},
    {"clear", (PyCFunction)CT_clear, METH_NOARGS, "forget every context"},
    {"memory", (PyCFunction)CT_memory, METH_NOARGS, "bytes held by the table"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef CT_getset[] = {
    {"capacity", (getter)CT_capacity, NULL, "slots handed out so far (every slot is below it)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods CT_as_sequence = {.sq_length = (lenfunc)CT_len};

static PyTypeObject ContextTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "flowpipe.aggregate._tables.ContextTable",
    .tp_basicsize = sizeof(ContextTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Flow contexts: key -> slot, in the order they were made (see flowpipe.aggregate.contexts)",
    .tp_new = CT_new,
    .tp_dealloc = (destructor)CT_dealloc,
    .tp_methods = CT_methods,
    .tp_getset = CT_getset,
    .tp_as_sequence = &CT_as_sequence,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tables", "The accumulator's tables, compiled.", -1,
                                     NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__tables(void) {
    if (PyType_Ready(&TrackersType) < 0 || PyType_Ready(&ContextTableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&TrackersType);
    Py_INCREF(&ContextTableType);
    if (PyModule_AddObject(m, "Trackers", (PyObject *)&TrackersType) < 0 ||
        PyModule_AddObject(m, "ContextTable", (PyObject *)&ContextTableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
