// The dashboard's entry point: tabs (#query, #library, #map, #model), dialogs, the key button.

import { forgetKey, hasKey } from "./api.js";
import { getModel, toast } from "./common.js";
import { initLibrary, refresh as refreshLibrary } from "./library.js";
import { initMap, refreshMap } from "./map.js";
import { showModel } from "./model.js";
import { initQuery } from "./query.js";

const VIEWS = {
  query: async () => {},
  library: refreshLibrary,
  map: refreshMap,
  model: showModel,
};

async function show(name) {
  const view = name in VIEWS ? name : "query";
  for (const key of Object.keys(VIEWS)) {
    document.getElementById(`view-${key}`).hidden = key !== view;
    document.getElementById(`tab-${key}`).setAttribute("aria-selected", String(key === view));
  }
  try {
    await VIEWS[view]();
  } catch (error) {
    toast(error.message, "error");
  }
}

function updateKeyButton() {
  const button = document.getElementById("key-forget");
  button.hidden = !hasKey();
}

async function start() {
  initQuery();
  initLibrary();
  initMap();
  for (const dialog of document.querySelectorAll("dialog")) {
    dialog.addEventListener("close", updateKeyButton);
  }
  document.getElementById("key-forget").addEventListener("click", () => {
    forgetKey();
    updateKeyButton();
    toast("The API key is forgotten for this tab");
  });
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  try {
    const model = await getModel();
    document.getElementById("model-name").textContent = model.model;
    document.getElementById("query-hint").textContent =
      `The model covers ${model.wavelength_range[0]}–${model.wavelength_range[1]} ${model.wavelength_unit} ` +
      `(${model.seq_len} points). Plain numbers must be exactly ${model.seq_len} values on that grid.`;
  } catch (error) {
    toast(`The model summary could not be loaded: ${error.message}`, "error");
  }
  updateKeyButton();
  await show(location.hash.slice(1));
  document.body.dataset.ready = "true";
}

start();
