// A little progressive enhancement; every page works without it.
document.addEventListener("DOMContentLoaded", function () {
  // Forms that move money: disable the button once submitted (the hidden idempotency key guards the server too).
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type=submit]").forEach(function (button) { button.disabled = true; });
    });
  });
  // The item page's gallery: a thumbnail shows its photo in the main place (without JavaScript it opens it).
  document.querySelectorAll(".gallery").forEach(function (gallery) {
    var main = gallery.querySelector(".gallery-main");
    var image = main && main.querySelector("img");
    gallery.querySelectorAll("a[data-full]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        image.src = link.dataset.full;
        image.width = Number(link.dataset.width);
        image.height = Number(link.dataset.height);
        main.href = link.dataset.full;
      });
    });
  });
  // "Previous page" on search: the browser's history when there is one (cursors only go forward).
  document.querySelectorAll("a[data-back]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      if (window.history.length > 1) { event.preventDefault(); window.history.back(); }
    });
  });
});
