// The tutorial's client, unchanged but for its one slip: createElement("p").
const client = io();

document.querySelectorAll("button").forEach(b => {
  b.addEventListener("click", (e) => {
    client.emit("channel_join", e.target.id);
  })
})

document.getElementById("message").addEventListener("click", () => {
  const message = prompt("Send your message: ");
  client.emit("message", message);
})

client.on("message", (receivedMessage) => {
  const newMessage = document.createElement("p");
  newMessage.textContent = receivedMessage.message;
  document.querySelector(`.${receivedMessage.channel}`).appendChild(newMessage);
})
