// The campaign page's progress, refreshed while the campaign sends.
(function () {
  "use strict";
  const page = document.getElementById("campaign");
  if (!page) return;
  const id = page.dataset.campaignId;

  async function refresh() {
    const answer = await fetch("/api/campaigns/" + id, { credentials: "same-origin" });
    if (!answer.ok) return;
    const campaign = await answer.json();
    const progress = campaign.progress;
    document.getElementById("status").textContent = campaign.status;
    const bar = document.getElementById("bar");
    bar.max = progress.total || 1;
    bar.value = progress.done;
    document.getElementById("done").textContent =
      progress.done + " of " + progress.total + " handled";
    for (const cell of document.querySelectorAll("[data-count]")) {
      cell.textContent = progress[cell.dataset.count];
    }
    if (campaign.status === "sending" || campaign.status === "approved") {
      setTimeout(refresh, 2000);
    }
  }

  setTimeout(refresh, 2000);
})();
