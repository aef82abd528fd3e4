/* GAN, contrastive and diversity losses on top of lib/ops. */
#include "losses.h"

negcut_status ngc_loss_value(negcut_ctx *ctx, const ngc_tensor *value, float *out) {
  ngc_backend *be = ctx->be;
  return be->ops.download(be, out, value->data, sizeof *out);
}

/* ------------------------------------------------------------------ GAN */

negcut_status ngc_gan_loss_forward(ngc_tape *tape, ngc_gan_mode mode, const ngc_tensor *pred,
                                   int target_is_real, ngc_gan_rec *rec) {
  negcut_status st = ngc_tape_scalar(tape, &rec->value);
  rec->mode = mode;
  rec->pred = pred;
  rec->target = target_is_real ? 1.0f : 0.0f;
  if (st) return st;
  if (mode == NGC_GAN_LSGAN) return ngc_mse_const_fwd(tape->ctx, pred, rec->target, &rec->value);
  if (mode == NGC_GAN_VANILLA) return ngc_bce_const_fwd(tape->ctx, pred, rec->target, &rec->value);
  return ngc_error(tape->ctx, NEGCUT_ERR_INVALID_ARGUMENT, "unknown GAN mode %d", (int)mode);
}

negcut_status ngc_gan_loss_backward(ngc_tape *tape, const ngc_gan_rec *rec, float dloss,
                                    ngc_tensor *dpred) {
  if (rec->mode == NGC_GAN_LSGAN)
    return ngc_mse_const_bwd(tape->ctx, rec->pred, rec->target, dloss, dpred);
  return ngc_bce_const_bwd(tape->ctx, rec->pred, rec->target, dloss, dpred);
}

/* ------------------------------------------------------------------ NCE */

negcut_status ngc_nce_forward(ngc_tape *tape, const ngc_tensor *q, const ngc_tensor *k,
                              const ngc_tensor *negs, int64_t batch, float tau, ngc_nce_rec *rec) {
  negcut_ctx *ctx = tape->ctx;
  int64_t rows = q->dim[0], c = q->dim[1], s = batch > 0 ? rows / batch : 0;
  int64_t nn = negs ? (batch > 0 ? negs->dim[0] / batch : 0) : s;
  negcut_status st;
  ngc_tensor q3, o3, lneg2, lpos2, logits_raw;
  if (q->ndim != 2 || !ngc_same_shape(q, k) || batch < 1 || rows != batch * s || s < 1 ||
      (negs && (negs->ndim != 2 || negs->dim[1] != c || negs->dim[0] != batch * nn || nn < 1)))
    return ngc_error(ctx, NEGCUT_ERR_SHAPE,
                     "nce: q and k must be (B*S, C) with B = %lld, negatives (B*N, C)",
                     (long long)batch);
  rec->q = q;
  rec->k = k;
  rec->negs = negs;
  rec->batch = batch;
  rec->rows = rows;
  rec->n_neg = nn;
  rec->tau = tau;
  q3 = ngc_tensor_view(q->be, q->data, 3, (int64_t[3]){batch, s, c});
  const ngc_tensor *other = negs ? negs : k;
  o3 = ngc_tensor_view(other->be, other->data, 3, (int64_t[3]){batch, nn, c});
  st = ngc_tape_tensor(tape, &rec->lpos, 1, (int64_t[1]){rows});
  if (!st) st = ngc_tape_tensor(tape, &rec->lneg, 3, (int64_t[3]){batch, s, nn});
  if (!st) st = ngc_tape_tensor(tape, &logits_raw, 2, (int64_t[2]){rows, 1 + nn});
  if (!st) st = ngc_tape_tensor(tape, &rec->logits, 2, (int64_t[2]){rows, 1 + nn});
  if (!st) st = ngc_tape_tensor(tape, &rec->per_query, 1, (int64_t[1]){rows});
  if (!st) st = ngc_tape_scalar(tape, &rec->value);
  if (!st) st = ngc_rowdot_fwd(ctx, q, k, &rec->lpos); // (B*S)
  if (!st) st = ngc_bmm_fwd(ctx, &q3, &o3, &rec->lneg); // (B, S, Nn)
  if (!st && !negs) st = ngc_fill_diag_fwd(ctx, -10.0f, &rec->lneg, &rec->lneg);
  if (!st) {
    lpos2 = ngc_tensor_view(rec->lpos.be, rec->lpos.data, 2, (int64_t[2]){rows, 1});
    lneg2 = ngc_tensor_view(rec->lneg.be, rec->lneg.data, 2, (int64_t[2]){rows, nn});
    st = ngc_concat_fwd(ctx, &lpos2, &lneg2, &logits_raw); // (B*S, 1 + Nn)
  }
  if (!st) st = ngc_axpby(ctx, 1.0f / tau, &logits_raw, 0.0f, &rec->logits);
  if (!st) st = ngc_xent0_fwd(ctx, &rec->logits, &rec->per_query);
  if (!st) st = ngc_mean_all(ctx, &rec->per_query, &rec->value);
  return st;
}

negcut_status ngc_nce_backward(ngc_tape *tape, const ngc_nce_rec *rec, float dloss, ngc_tensor *dq,
                               ngc_tensor *dnegs) {
  negcut_ctx *ctx = tape->ctx;
  int64_t rows = rec->rows, nn = rec->n_neg, b = rec->batch, c = rec->q->dim[1], s = rows / b;
  ngc_tensor dper, dlogits, dlpos, dlneg, dq_neg, q3, o3, dq3, dn3;
  const ngc_tensor *other = rec->negs ? rec->negs : rec->k;
  negcut_status st;
  if (!dq && !dnegs) return NEGCUT_OK;
  st = ngc_tape_tensor(tape, &dper, 1, (int64_t[1]){rows});
  if (!st) st = ngc_tape_tensor(tape, &dlogits, 2, (int64_t[2]){rows, 1 + nn});
  if (!st) st = ngc_tape_tensor(tape, &dlpos, 2, (int64_t[2]){rows, 1});
  if (!st) st = ngc_tape_tensor(tape, &dlneg, 2, (int64_t[2]){rows, nn});
  /* mean over queries, then the 1 / tau of the logits */
  if (!st) st = ngc_fill(ctx, &dper, dloss / (float)rows);
  if (!st) st = ngc_xent0_bwd(ctx, &rec->logits, &dper, &dlogits);
  if (!st) st = ngc_axpby(ctx, 1.0f / rec->tau, &dlogits, 0.0f, &dlogits);
  if (!st) st = ngc_concat_bwd(ctx, &dlogits, &dlpos, &dlneg);
  if (st) return st;
  dlneg = ngc_tensor_view(dlneg.be, dlneg.data, 3, (int64_t[3]){b, s, nn});
  if (!rec->negs) st = ngc_fill_diag_bwd(ctx, &dlneg, &dlneg);
  q3 = ngc_tensor_view(rec->q->be, rec->q->data, 3, (int64_t[3]){b, s, c});
  o3 = ngc_tensor_view(other->be, other->data, 3, (int64_t[3]){b, nn, c});
  if (!st && dq) {
    /* q receives both the positive (through rowdot, k detached) and the
     * negative logits. */
    st = ngc_tape_tensor(tape, &dq_neg, 2, rec->q->dim);
    if (!st) {
      dq3 = ngc_tensor_view(dq_neg.be, dq_neg.data, 3, (int64_t[3]){b, s, c});
      st = ngc_bmm_bwd(ctx, &q3, &o3, &dlneg, &dq3, NULL);
    }
    if (!st) {
      ngc_tensor dlpos1 = ngc_tensor_view(dlpos.be, dlpos.data, 1, (int64_t[1]){rows});
      st = ngc_rowdot_bwd(ctx, rec->q, rec->k, &dlpos1, dq, NULL);
    }
    if (!st) st = ngc_axpby(ctx, 1.0f, &dq_neg, 1.0f, dq);
  }
  if (!st && dnegs && rec->negs) {
    dn3 = ngc_tensor_view(dnegs->be, dnegs->data, 3, (int64_t[3]){b, nn, c});
    st = ngc_bmm_bwd(ctx, &q3, &o3, &dlneg, NULL, &dn3);
  }
  return st;
}

/* ------------------------------------------------------------ diversity */

negcut_status ngc_diversity_forward(ngc_tape *tape, const ngc_tensor *negs, int64_t batch,
                                    ngc_div_rec *rec) {
  negcut_ctx *ctx = tape->ctx;
  int64_t nn = batch > 0 ? negs->dim[0] / batch : 0, c = negs->dim[1], half = nn / 2;
  negcut_status st;
  if (negs->ndim != 2 || batch < 1 || nn * batch != negs->dim[0] || half < 1 || 2 * half != nn)
    return ngc_error(ctx, NEGCUT_ERR_SHAPE, "diversity: negatives must be (B*N, C) with N even");
  /* Splitting along dim 1 of (B, N, C, 1) is concat's backward. */
  ngc_tensor n4 = ngc_tensor_view(negs->be, negs->data, 4, (int64_t[4]){batch, nn, c, 1});
  st = ngc_tape_tensor(tape, &rec->first, 4, (int64_t[4]){batch, half, c, 1});
  if (!st) st = ngc_tape_tensor(tape, &rec->second, 4, (int64_t[4]){batch, half, c, 1});
  if (!st) st = ngc_tape_scalar(tape, &rec->value);
  if (!st) st = ngc_concat_bwd(ctx, &n4, &rec->first, &rec->second);
  if (!st) st = ngc_mad_fwd(ctx, &rec->first, &rec->second, &rec->value);
  return st;
}

negcut_status ngc_diversity_backward(ngc_tape *tape, const ngc_div_rec *rec, float dloss,
                                     ngc_tensor *dnegs) {
  negcut_ctx *ctx = tape->ctx;
  ngc_tensor da, db;
  negcut_status st = ngc_tape_tensor(tape, &da, 4, rec->first.dim);
  if (!st) st = ngc_tape_tensor(tape, &db, 4, rec->second.dim);
  if (!st) st = ngc_mad_bwd(ctx, &rec->first, &rec->second, -dloss, &da, &db);
  if (!st) {
    ngc_tensor n4 = ngc_tensor_view(dnegs->be, dnegs->data, 4,
                                    (int64_t[4]){rec->first.dim[0], 2 * rec->first.dim[1],
                                                 rec->first.dim[2], 1});
    st = ngc_concat_fwd(ctx, &da, &db, &n4);
  }
  return st;
}
