// The signup form's live check: says whether the subdomain typed is free, as it is typed.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("slug");
  const status = document.getElementById("slug-status");
  if (!input || !status) return;
  let timer = null;
  let asked = "";
  const check = async () => {
    const slug = input.value.trim();
    if (slug === "" || slug === asked) return;
    asked = slug;
    try {
      const response = await fetch("/signup/check?slug=" + encodeURIComponent(slug), {
        headers: { Accept: "application/json" },
      });
      if (!response.ok || input.value.trim() !== slug) return;
      const answer = await response.json();
      status.textContent = answer.message;
      status.className = answer.available ? "hint available" : "hint taken";
    } catch (_) {
      asked = "";
    }
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 200);
  });
  if (input.value.trim() !== "") check();
});
