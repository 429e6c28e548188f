/* SPDX-License-Identifier: MIT */
/*
 * barnes — an n-body simulation with the Barnes-Hut tree code (issue 12,
 * shape 6; our own version of the idea of the Olden benchmark).  Bodies
 * live for the whole run; every step builds an octree of them from small
 * heap nodes (a 64-byte leaf per body, a 152-byte cell for each split),
 * computes each cell's mass and centre of mass, computes the force on every
 * body by walking the tree (a cell seen under an angle below theta counts
 * as one body), moves the bodies (leapfrog) and frees the tree.  Every node
 * carries a tag at both ends, derived from its address and the step,
 * checked when it is freed.  Single thread.  The result's checksum of the
 * final positions must not depend on the allocator.
 *
 *   barnes bodies=N steps=N theta=T (in hundredths)
 */
#include "common.h"
#include <stddef.h>

typedef struct {
  double pos[3], vel[3], acc[3], mass;
} body_t;

typedef struct node {
  uint64_t tag;
  int is_leaf;
  double mass, cm[3];
  union {
    struct {
      body_t *body;
    } leaf;
    struct {
      double center[3], half;
      struct node *child[8];
    } cell;
  } u;
  uint64_t tail;
} node_t;

static long step_no, nodes_made, bad;
static double theta;

static size_t node_size(int leaf) {
  return leaf ? offsetof(node_t, u) + sizeof(((node_t *)0)->u.leaf) + sizeof(uint64_t) : sizeof(node_t);
}
static uint64_t *tail_of(node_t *n) { return (uint64_t *)((char *)n + node_size(n->is_leaf) - sizeof(uint64_t)); }

static node_t *node_new(int leaf) {
  node_t *n = xmalloc(node_size(leaf));
  n->is_leaf = leaf;
  n->tag = mix64((uint64_t)(uintptr_t)n ^ (uint64_t)step_no);
  *tail_of(n) = ~n->tag;
  nodes_made++;
  return n;
}

static node_t *leaf_new(body_t *b) {
  node_t *n = node_new(1);
  n->u.leaf.body = b;
  n->mass = b->mass;
  memcpy(n->cm, b->pos, sizeof n->cm);
  return n;
}

static node_t *cell_new(const double center[3], double half) {
  node_t *n = node_new(0);
  memcpy(n->u.cell.center, center, sizeof n->u.cell.center);
  n->u.cell.half = half;
  memset(n->u.cell.child, 0, sizeof n->u.cell.child);
  return n;
}

static int octant(const node_t *c, const double p[3]) {
  return (p[0] >= c->u.cell.center[0]) | (p[1] >= c->u.cell.center[1]) << 1 | (p[2] >= c->u.cell.center[2]) << 2;
}

static void insert(node_t *c, body_t *b, int depth) {
  for (;;) {
    int o = octant(c, b->pos);
    node_t *ch = c->u.cell.child[o];
    if (!ch) {
      c->u.cell.child[o] = leaf_new(b);
      return;
    }
    if (ch->is_leaf) {
      if (depth > 60) { /* coincident bodies: keep them apart by a nudge */
        b->pos[0] += 1e-9;
        continue;
      }
      double h = c->u.cell.half / 2, ctr[3];
      for (int k = 0; k < 3; k++)
        ctr[k] = c->u.cell.center[k] + ((o >> k) & 1 ? h : -h);
      node_t *sub = cell_new(ctr, h);
      sub->u.cell.child[octant(sub, ch->u.leaf.body->pos)] = ch;
      c->u.cell.child[o] = sub;
    }
    c = c->u.cell.child[o];
    depth++;
  }
}

static void summarise(node_t *c) {
  c->mass = 0;
  double m[3] = {0, 0, 0};
  for (int o = 0; o < 8; o++) {
    node_t *ch = c->u.cell.child[o];
    if (!ch)
      continue;
    if (!ch->is_leaf)
      summarise(ch);
    c->mass += ch->mass;
    for (int k = 0; k < 3; k++)
      m[k] += ch->mass * ch->cm[k];
  }
  for (int k = 0; k < 3; k++)
    c->cm[k] = m[k] / c->mass;
}

/* 1 / sqrt(x) for x > 0 by Newton's method (libm is not linked): a first
 * guess from the exponent, then five steps, to double precision. */
static double rsqrt(double x) {
  uint64_t u;
  memcpy(&u, &x, 8);
  u = 0x5FE6EB50C7B537A9ull - (u >> 1);
  double y;
  memcpy(&y, &u, 8);
  for (int i = 0; i < 5; i++)
    y = y * (1.5 - 0.5 * x * y * y);
  return y;
}

static void force(const node_t *n, body_t *b, double width) {
  double d[3], r2 = 1e-6; /* softening */
  for (int k = 0; k < 3; k++) {
    d[k] = n->cm[k] - b->pos[k];
    r2 += d[k] * d[k];
  }
  if (n->is_leaf || width * width < theta * theta * r2) {
    if (n->is_leaf && n->u.leaf.body == b)
      return;
    double ir = rsqrt(r2), inv = n->mass * ir * ir * ir;
    for (int k = 0; k < 3; k++)
      b->acc[k] += d[k] * inv;
    return;
  }
  for (int o = 0; o < 8; o++)
    if (n->u.cell.child[o])
      force(n->u.cell.child[o], b, width / 2);
}

static void tree_free(node_t *n) {
  if (!n->is_leaf)
    for (int o = 0; o < 8; o++)
      if (n->u.cell.child[o])
        tree_free(n->u.cell.child[o]);
  if (n->tag != mix64((uint64_t)(uintptr_t)n ^ (uint64_t)step_no) || *tail_of(n) != ~n->tag)
    bad++;
  free(n);
}

int main(int argc, char **argv) {
  long nbodies = arg_long(argc, argv, "bodies", 4000);
  long steps = arg_long(argc, argv, "steps", 40);
  theta = (double)arg_long(argc, argv, "theta", 100) / 100.0;
  if (nbodies < 2 || steps < 1)
    return 2;
  body_t *bodies = xmalloc((size_t)nbodies * sizeof *bodies);
  rng_t r;
  rng_seed(&r, 31);
  /* a Plummer-like ball: denser in the middle, slowly turning */
  for (long i = 0; i < nbodies; i++) {
    body_t *b = &bodies[i];
    double x, y, z, q;
    do {
      x = (double)(rng_next(&r) >> 11) / 9007199254740992.0 * 2 - 1;
      y = (double)(rng_next(&r) >> 11) / 9007199254740992.0 * 2 - 1;
      z = (double)(rng_next(&r) >> 11) / 9007199254740992.0 * 2 - 1;
      q = x * x + y * y + z * z;
    } while (q > 1 || q == 0);
    double s = q; /* pulls points towards the centre */
    b->pos[0] = x * s, b->pos[1] = y * s, b->pos[2] = z * s;
    b->vel[0] = -b->pos[1] * 0.3, b->vel[1] = b->pos[0] * 0.3, b->vel[2] = 0;
    b->mass = 1.0 / (double)nbodies;
    memset(b->acc, 0, sizeof b->acc);
  }
  const double dt = 0.001;
  double t0 = now_s();
  for (step_no = 0; step_no < steps; step_no++) {
    double lo[3], hi[3];
    for (int k = 0; k < 3; k++)
      lo[k] = hi[k] = bodies[0].pos[k];
    for (long i = 1; i < nbodies; i++)
      for (int k = 0; k < 3; k++) {
        double p = bodies[i].pos[k];
        lo[k] = p < lo[k] ? p : lo[k];
        hi[k] = p > hi[k] ? p : hi[k];
      }
    double ctr[3], half = 0;
    for (int k = 0; k < 3; k++) {
      ctr[k] = (lo[k] + hi[k]) / 2;
      half = (hi[k] - lo[k]) / 2 > half ? (hi[k] - lo[k]) / 2 : half;
    }
    node_t *root = cell_new(ctr, half * 1.0001 + 1e-12);
    for (long i = 0; i < nbodies; i++)
      insert(root, &bodies[i], 0);
    summarise(root);
    for (long i = 0; i < nbodies; i++) {
      body_t *b = &bodies[i];
      double old[3];
      memcpy(old, b->acc, sizeof old);
      memset(b->acc, 0, sizeof b->acc);
      force(root, b, 2 * root->u.cell.half);
      for (int k = 0; k < 3; k++)
        b->vel[k] += (step_no ? (b->acc[k] + old[k]) / 2 : b->acc[k]) * dt;
    }
    for (long i = 0; i < nbodies; i++)
      for (int k = 0; k < 3; k++)
        bodies[i].pos[k] += bodies[i].vel[k] * dt;
    tree_free(root);
  }
  double t = now_s() - t0;
  if (bad) {
    fprintf(stderr, "barnes: %ld corrupted tree nodes\n", bad);
    return 4;
  }
  uint64_t sum = 0;
  for (long i = 0; i < nbodies; i++)
    for (int k = 0; k < 3; k++) {
      uint64_t u;
      memcpy(&u, &bodies[i].pos[k], 8);
      sum = mix64(sum ^ u);
    }
  free(bodies);
  printf("result bodies=%ld steps=%ld nodes=%ld checksum=%016llx secs=%.4f mops_per_s=%.3f\n", nbodies, steps,
         nodes_made, (unsigned long long)sum, t, (double)nodes_made / t / 1e6);
  return 0;
}
