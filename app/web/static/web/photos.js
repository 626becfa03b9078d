// Previews of the photos chosen on the sell and edit pages, with remove and reorder before they are sent.
// The file input's own list is rebuilt (DataTransfer), so the form sends what the previews show, in that order.
// Without JavaScript the input still works: the photos are sent in the order chosen.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[type=file][data-previews]").forEach(function (input) {
    var list = document.getElementById(input.dataset.previews);
    var urls = [];

    function setFiles(files) {
      var transfer = new DataTransfer();
      files.forEach(function (file) { transfer.items.add(file); });
      input.files = transfer.files;
      render();
    }

    function button(label, onClick) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.textContent = label;
      b.addEventListener("click", onClick);
      return b;
    }

    function render() {
      urls.forEach(function (url) { URL.revokeObjectURL(url); });
      urls = [];
      list.replaceChildren();
      var files = Array.from(input.files);
      files.forEach(function (file, index) {
        var item = document.createElement("li");
        item.className = "photo-row";
        var img = document.createElement("img");
        var url = URL.createObjectURL(file);
        urls.push(url);
        img.src = url;
        img.alt = "Preview of " + file.name;
        img.width = 96;
        img.height = 96;
        img.className = "thumb-square";
        var name = document.createElement("span");
        name.className = "meta";
        name.textContent = file.name;
        item.append(img, name);
        if (index > 0) {
          item.append(button("Move earlier", function () {
            var moved = files.slice();
            moved.splice(index - 1, 0, moved.splice(index, 1)[0]);
            setFiles(moved);
          }));
        }
        item.append(button("Remove", function () {
          setFiles(files.filter(function (_, i) { return i !== index; }));
        }));
        list.append(item);
      });
    }

    input.addEventListener("change", render);
  });
});
