/* SPDX-License-Identifier: MIT */
/*
 * A plugin: a shared object that links libtidemalloc-prefixed.a into
 * itself and allocates with tide_malloc, for a host that dlopen()s it
 * (tests/pkg/dlopen.c).  Linked -z nodelete: the allocator inside it
 * may run a purge thread, whose code must stay mapped.
 */
#include <stdint.h>
#include <string.h>

#include "tidemalloc.h"

/* Builds a linked list of n blocks of varying sizes, checks and frees it;
 * returns the number of damaged blocks (0). */
__attribute__((visibility("default"))) int plugin_work(int n);
int plugin_work(int n) {
  struct node {
    struct node *next;
    size_t size;
    unsigned char data[];
  } *head = NULL;
  for (int i = 0; i < n; i++) {
    size_t size = (size_t)(i * 37 % 3000);
    struct node *e = tide_malloc(sizeof *e + size);
    if (!e)
      return 1;
    e->size = size;
    memset(e->data, (int)(size & 0xff), size);
    e->next = head;
    head = e;
  }
  int bad = 0;
  while (head) {
    struct node *next = head->next;
    for (size_t i = 0; i < head->size; i++)
      if (head->data[i] != (unsigned char)(head->size & 0xff)) {
        bad++;
        break;
      }
    tide_free(head);
    head = next;
  }
  return bad + (tide_heap_check() != 0);
}
