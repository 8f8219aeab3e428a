"""CCA: how correlated are the image and text spaces? Canonical correlations and CCA-space retrieval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from mmexplore.projection import CCA, cca_retrieval, min_pairs_needed
from mmexplore_app import widgets
from mmexplore_app.cache import cache_key, session_cached
from mmexplore_app.embedding_source import choose_embeddings
from mmexplore_app.joint_figures import canonical_scatter, correlation_bars, recall_figure

REGS = [0.0, 0.001, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0]

EXPLANATION = r"""
**Canonical correlation analysis** looks for a direction $a$ in image space and a direction $b$ in
text space such that, over the true pairs, the projections $E_i a$ and $E_t b$ are as correlated as
possible. That correlation $\rho_1$ is the first **canonical correlation**; the next pair of
directions is the best one uncorrelated with the first, and so on. $\rho$ near 1: a shared signal
that both encoders carry in a linear way; near 0: no linear relation left.

How it is computed: with the covariances $\Sigma_{ii}, \Sigma_{tt}$ and the cross-covariance
$\Sigma_{it}$ of the (standardised) embeddings, whiten each side ($\Sigma = LL^\top$) and take one SVD,
$L_i^{-1}\Sigma_{it}L_t^{-\top} = USV^\top$: the singular values are all canonical correlations at once.

**Why regularise** ($\Sigma + rI$): with few pairs per dimension, CCA can always find directions
with a correlation of 1 by chance (there are more directions than pairs). The ridge $r$ shrinks the
spurious ones and keeps the covariances invertible; the true shared directions survive it.

**Retrieval in CCA space** ranks captions for each image by the cosine of their first $k$ canonical
variates instead of the raw embeddings. When the data allow, CCA is fitted on 70 % of the pairs and
evaluated on the other 30 % (otherwise in-sample, which flatters CCA; the page says so).
"""

st.title("CCA")
widgets.explain("What am I looking at?", EXPLANATION)
loaded = choose_embeddings("cca")
es = loaded.data
x, y = es.paired_rows()
n, d = x.shape

reg = st.select_slider("Regulariser r (Σ + rI, on standardised features)", REGS, key=widgets.keep("cca_reg", 0.1, valid=REGS))
need = min_pairs_needed(x.shape[1], y.shape[1], reg)
if n < need:
    extra = " with r = 0 (a larger r needs only 3)" if reg == 0 else ""
    st.info(f"CCA needs at least {need} image–caption pairs{extra}; this data set has {n}. "
            "Add pairs on the Home page or load a larger sample set.")
    st.stop()

try:
    cca = session_cached("cca", cache_key(None, loaded.key, "fit", reg), lambda: CCA(reg=reg).fit(x, y))
    k_all = len(cca.correlations_)
    bar = widgets.progress_callback("Held-out retrieval (rankings done)", min_items=0)
    retr = session_cached("cca", cache_key(None, loaded.key, "retrieval", reg),
                          lambda: cca_retrieval(x, y, reg=reg, progress=bar))
except Exception as exc:  # one message, never a traceback
    widgets.show_error(exc)
    st.stop()

if n < 5 * d:
    st.warning(f"{n} pairs for {d} dimensions: with so few pairs the top correlations are close to 1 by chance. "
               "Raise r, or load more pairs.", icon="⚠️")

top_k = st.slider("Canonical components used for retrieval (top k)", 1, k_all,
                  key=widgets.keep("cca_top_k", min(k_all, 8), valid=range(1, k_all + 1)))
left, right = st.columns([1.3, 1], gap="medium")
with left:
    st.plotly_chart(correlation_bars(cca.correlations_, top_k), key="cca_bars", config={"displaylogo": False})
    tx, ty = cca.transform(x, y)
    fig, shown = canonical_scatter(tx, ty, [es.image_names[i] for i in es.pairs[:, 0]],
                                   [es.captions[j] for j in es.pairs[:, 1]])
    st.plotly_chart(fig, key="cca_scatter", config={"displaylogo": False})
    if shown < n:
        st.caption(f"Showing {shown:,} of {n:,} pairs (random sample) so the chart stays responsive.")
with right:
    st.subheader("Retrieval R@1 (image → text)")
    ks, i2t, t2i = list(retr.ks), list(retr.recall_cca), list(retr.t2i_cca)
    if top_k not in ks:  # one more k: only its two rankings, not the whole ladder again
        extra = session_cached("cca", cache_key(None, loaded.key, "retrieval", reg, top_k),
                               lambda: cca_retrieval(x, y, reg=reg, ks=[top_k]))
        at = int(np.searchsorted(ks, top_k))
        ks.insert(at, top_k)
        i2t.insert(at, extra.recall_cca[0])
        t2i.insert(at, extra.t2i_cca[0])
    r_at_k = i2t[ks.index(top_k)]
    st.metric(f"CCA space, top {top_k} components", f"{r_at_k:.3f}", delta=f"{r_at_k - retr.recall_raw:+.3f} vs raw cosine")
    st.metric("raw cosine (joint space)", f"{retr.recall_raw:.3f}")
    sampled = (f"R@1 averaged over a random sample of {retr.n_queries:,} queries (standard error ≤ "
               f"{0.5 / np.sqrt(retr.n_queries):.3f}), each ranked against all {retr.n_eval:,}"
               if retr.n_queries < retr.n_eval else f"{retr.n_eval:,} pairs ranked against each other")
    st.caption(f"{'Held-out' if retr.held_out else 'In-sample (too few pairs to hold some out; flatters CCA)'}: "
               f"{sampled}; chance = {1 / max(retr.n_eval, 1):.4f}.")
    table = pd.DataFrame({"k": ks, "R@1 CCA i→t": i2t, "R@1 CCA t→i": t2i})
    st.plotly_chart(recall_figure(ks, i2t, t2i, retr.recall_raw, top_k), key="cca_recall", config={"displaylogo": False})
    st.dataframe(table.style.format({"R@1 CCA i→t": "{:.3f}", "R@1 CCA t→i": "{:.3f}"}), hide_index=True, key="cca_table")
    corr = pd.DataFrame({"component": np.arange(1, k_all + 1), "rho": cca.correlations_})
    widgets.download_csv(corr.set_index("component"), "canonical_correlations", key="cca_dl")
